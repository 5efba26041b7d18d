/* test_serve_cli_main.c: a test-only host for `serve` (rank_cmd_serve) linked with the marked
 * test fake (test_serve_fake.c), so the CLI's signal handling can be tested before the real
 * scorer and store are on the branch. Invoked as `<this> serve ...`, like `trail serve ...`. */
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
