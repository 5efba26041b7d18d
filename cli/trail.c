/* trail.c: the one CLI binary. Looks the subcommand up in a table and hands it argc/argv with
 * argv[0] set to the subcommand's name. */
#include "trail_cmds.h"

#include <stdio.h>
#include <string.h>

typedef struct trail_cmd {
    const char *word1, *word2; /* "model", "init"; word2 NULL for one-word commands */
    int (*run)(int argc, char **argv);
    const char *help;
} trail_cmd;

static const trail_cmd cmds[] = {
    {"model", "init", mdl_cmd_init, "write a randomly initialized model file"},
    {"model", "info", mdl_cmd_info, "print a model file's config and versions"},
    {"gen", NULL, trn_cmd_gen, "write a synthetic event stream with known click probabilities"},
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
