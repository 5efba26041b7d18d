/* trail.c: the one CLI binary. Each module exports its commands as core_cmd tables; this file
 * lists them, finds the one argv names and hands it argc/argv with argv[0] set to the command's
 * last word. `trail --help`, `trail GROUP --help`, `trail help CMD` and `trail --version` are
 * answered here, on stdout with exit 0. */
#include "core_opts.h"
#include "core_version.h"
#include "enc_cli.h"
#include "mdl_cli.h"
#include "pipe_cli.h"
#include "rank_cli.h"
#include "rank_isa.h"
#include "trn_cli.h"

#include <stdio.h>
#include <string.h>

/* `trail encode` replays a file, or runs as a Kafka worker when given brokers or a worker config;
 * its help shows both. */
static int cmd_encode(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            char *help[] = {argv[0], argv[i], NULL};
            int rc = enc_encode_cmd.run(2, help);
            printf("\nAs a Kafka worker (given --brokers or --config):\n\n");
            return rc | pipe_encode_cmd.run(2, help);
        }
        if (!strncmp(argv[i], "--brokers", 9) || !strncmp(argv[i], "--config", 8))
            return pipe_encode_cmd.run(argc, argv);
    }
    return enc_encode_cmd.run(argc, argv);
}

static const core_cmd encode_cmd = {
    "encode", "apply events to the LMDB user state: --input FILE, or --brokers (worker)",
    cmd_encode, NULL, NULL};
static const core_cmd encode_kafka_cmd = {"encode-kafka", "alias of `trail encode --brokers ...`",
                                          pipe_cmd_encode, NULL, NULL};
static const core_cmd *const trail_cmds[] = {&encode_cmd, &encode_kafka_cmd, NULL};

/* each module's table, in the order `trail --help` lists them */
static const core_cmd *const *const tables[] = {mdl_cmds,  enc_cmds,   trail_cmds, pipe_cmds,
                                                rank_cmds, serve_cmds, trn_cmds};

static const core_cmd *cmds[64];

static void collect(void) {
    size_t n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (size_t i = 0; tables[t][i] && n < sizeof cmds / sizeof *cmds - 1; i++)
            cmds[n++] = tables[t][i];
    cmds[n] = NULL;
}

/* the commands whose name starts with group (all when group is NULL), a group's together */
static void list(FILE *f, const char *group) {
    size_t gl = group ? strlen(group) : 0;
    fprintf(
        f,
        "usage: trail %s%s<command> [options]   (trail %s%s<command> --help for its options)\n\n",
        group ? group : "", group ? " " : "", group ? group : "", group ? " " : "");
    for (size_t i = 0; cmds[i]; i++) {
        size_t w = strcspn(cmds[i]->name, " "), seen = 0;
        for (size_t k = 0; k < i && !seen; k++) /* its first word was listed with an earlier one */
            seen = !strncmp(cmds[k]->name, cmds[i]->name, w) && strcspn(cmds[k]->name, " ") == w;
        for (size_t j = i; cmds[j] && !seen; j++)
            if (!strncmp(cmds[j]->name, cmds[i]->name, w) && strcspn(cmds[j]->name, " ") == w &&
                (!group || (!strncmp(cmds[j]->name, group, gl) && cmds[j]->name[gl] == ' ')))
                fprintf(f, "  %-20s %s\n", cmds[j]->name, cmds[j]->summary);
    }
    if (!group) fprintf(f, "\n  trail help <command>, trail --version\n");
}

static int is_group(const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; cmds[i]; i++)
        if (!strncmp(cmds[i]->name, word, n) && cmds[i]->name[n] == ' ') return 1;
    return 0;
}

/* the command argv[0..] names ("model info" or "rank"); *words says how many words it took */
static const core_cmd *lookup(int argc, char **argv, int *words) {
    char two[128] = "";
    if (argc >= 2) snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
    for (size_t i = 0; cmds[i]; i++)
        if (argc >= 2 && !strcmp(cmds[i]->name, two)) return *words = 2, cmds[i];
    for (size_t i = 0; cmds[i]; i++)
        if (!strcmp(cmds[i]->name, argv[0])) return *words = 1, cmds[i];
    return NULL;
}

static int is_help(const char *a) {
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static int unknown(int argc, char **argv) {
    fprintf(stderr, "trail: unknown command '%s%s%s'\n\n", argv[0], argc >= 2 ? " " : "",
            argc >= 2 ? argv[1] : "");
    list(stderr, is_group(argv[0]) ? argv[0] : NULL);
    return 2;
}

/* trail help [CMD...]: the command's own --help, a group's list, or everything */
static int help(int argc, char **argv) {
    int words;
    if (argc == 0) return list(stdout, NULL), 0;
    const core_cmd *c = lookup(argc, argv, &words);
    if (c) {
        char *hv[] = {argv[words - 1], "--help", NULL};
        return c->run(2, hv);
    }
    if (argc == 1 && is_group(argv[0])) return list(stdout, argv[0]), 0;
    return unknown(argc, argv);
}

int main(int argc, char **argv) {
    collect();
    if (argc < 2) {
        list(stderr, NULL);
        return 2;
    }
    if (is_help(argv[1])) return list(stdout, NULL), 0;
    if (!strcmp(argv[1], "--version")) return printf("trail %s\n", TRAIL_VERSION), 0;
    if (!strcmp(argv[1], "help")) return help(argc - 2, argv + 2);
    /* commands whose arithmetic runs on OpenBLAS (training, evaluation, the fp32 path) say once
     * when its kernel choice looks wrong for this CPU */
    static const char *const blas_users[] = {"serve", "rank", "train", "eval", "bench"};
    for (size_t i = 0; i < sizeof blas_users / sizeof *blas_users; i++)
        if (!strcmp(argv[1], blas_users[i])) {
            char warning[512];
            if (rank_isa_openblas_check(warning, sizeof warning))
                fprintf(stderr, "trail: warning: %s\n", warning);
        }
    int words;
    const core_cmd *c = lookup(argc - 1, argv + 1, &words);
    if (c) return c->run(argc - words, argv + words);
    if (is_group(argv[1]) && (argc == 2 || is_help(argv[2]))) {
        list(argc == 2 ? stderr : stdout, argv[1]);
        return argc == 2 ? 2 : 0;
    }
    return unknown(argc - 1, argv + 1);
}
