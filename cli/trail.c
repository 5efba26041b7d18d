/* trail.c: the one CLI binary. Looks the subcommand up in a table and hands it argc/argv with
 * argv[0] set to the subcommand's name. */
#include "rank_isa.h"
#include "trail_cmds.h"

#include <stdio.h>
#include <string.h>

typedef struct trail_cmd {
    const char *word1, *word2; /* "model", "init"; word2 NULL for one-word commands */
    int (*run)(int argc, char **argv);
    const char *help;
} trail_cmd;

/* `trail encode` replays a file, or runs as a Kafka worker when given brokers or a worker config. */
static int cmd_encode(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--brokers", 9) || !strncmp(argv[i], "--config", 8))
            return pipe_cmd_encode(argc, argv);
    return enc_cmd_encode(argc, argv);
}

static const trail_cmd cmds[] = {
    {"model", "init", mdl_cmd_init, "write a randomly initialized model file"},
    {"model", "info", rank_cmd_model_info, "print a model file's config, versions, and serving path"},
    {"import", "taobao", enc_cmd_import_taobao, "Taobao UserBehavior CSV -> event file"},
    {"import", "movielens", enc_cmd_import_movielens, "MovieLens ratings.csv -> event file"},
    {"encode", NULL, cmd_encode, "apply events to the LMDB user state: --input FILE, or --brokers (worker)"},
    {"encode-kafka", NULL, pipe_cmd_encode, "alias of `trail encode --brokers ...`"},
    {"reencode", NULL, enc_cmd_reencode, "rebuild every user's buckets for a new model"},
    {"inspect", NULL, enc_cmd_inspect, "print one user's encoder state (or the store's digest)"},
    {"broker", NULL, pipe_cmd_broker, "run a local in-memory Kafka broker (dev/tests only)"},
    {"produce", NULL, pipe_cmd_produce, "send an event file into a Kafka topic, keyed by user"},
    {"record", NULL, pipe_cmd_record, "write a Kafka topic range to an event file"},
    {"rank", NULL, rank_cmd_rank, "score candidates for one user from an encoder store"},
    {"serve", NULL, rank_cmd_serve, "serve /v1/score over HTTP with hot model reload"},
    {"gen", NULL, trn_cmd_gen, "write a synthetic event stream with known click probabilities"},
    {"train", NULL, trn_cmd_train, "train a model on point-in-time samples of an event file"},
    {"eval", NULL, trn_cmd_eval, "evaluate a model on a split of an event file (AUC, GAUC, log loss)"},
    {"bench", "encode", enc_cmd_bench_encode, "encoder throughput (kernel and end to end), JSON"},
    {"bench", "rank", rank_cmd_bench, "serving latency: SDIM against exact target attention"},
    {"bench", "pipeline", pipe_cmd_bench, "local broker -> worker -> LMDB throughput and freshness"},
    {"bench", "train", trn_cmd_bench_train, "training throughput (samples/s)"},
    {"bench", "serve", rank_cmd_bench_serve, "HTTP serving end to end on loopback: req/s, p50/p99"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: trail <command> [options]   (trail <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", cmds[i].word1, cmds[i].word2 ? " " : "",
                 cmds[i].word2 ? cmds[i].word2 : "");
        fprintf(f, "  %-20s %s\n", name, cmds[i].help);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* commands whose arithmetic runs on OpenBLAS (training, evaluation, the fp32 path) say once
     * when its kernel choice looks wrong for this CPU */
    static const char *const blas_users[] = {"serve", "rank", "train", "eval", "bench"};
    for (size_t i = 0; i < sizeof blas_users / sizeof *blas_users; i++)
        if (!strcmp(argv[1], blas_users[i])) {
            char warning[512];
            if (rank_isa_openblas_check(warning, sizeof warning))
                fprintf(stderr, "trail: warning: %s\n", warning);
        }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const trail_cmd *c = &cmds[i];
        if (strcmp(argv[1], c->word1) != 0) continue;
        if (!c->word2) return c->run(argc - 1, argv + 1);
        if (argc >= 3 && !strcmp(argv[2], c->word2)) return c->run(argc - 2, argv + 2);
    }
    fprintf(stderr, "trail: unknown command '%s%s%s'\n\n", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "");
    usage(stderr);
    return 2;
}
