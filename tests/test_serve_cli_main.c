/* test_serve_cli_main.c: a test-only host for `serve` (rank_cmd_serve) linked with the marked test
 * fakes (test_serve_fake_score.c, test_serve_fake_store.c), so the CLI's signal handling can be
 * tested before the real scorer and store are built. Invoked as `<this> serve ...`, like trail. */
#include "trail_cmds.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "usage: %s serve ...\n", argv[0]);
        return 2;
    }
    return rank_cmd_serve(argc - 1, argv + 1);
}
