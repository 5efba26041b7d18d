/* test_loud.c: failures that must not look like success (issue 14, item 6). Each case runs the
 * trail binary (TRAIL_BIN) as a child process on input that used to exit 0 or hang:
 * `trail import` of a file whose every row is malformed; a CSV field holding a NUL byte;
 * a complete last row without a newline (kept, not dropped as cut);
 * an empty or unreadable movies.csv; MovieLens ratings with users interleaved (written
 * grouped by user, in time order); `trail produce` to a broker address where nothing listens;
 * `trail encode --input` whose every record is rejected. */
#include "test_common.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    char dir[256], model[300], cmd[4096], out[1 << 16];
} fx;

/* Run "TRAIL_BIN args" (printf-style) in the fixture's directory, stdout and stderr into f->out;
 * returns the exit code. */
static int trail(fx *f, const char *fmt, ...) {
    char args[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(f->cmd, sizeof f->cmd, "cd '%s' && { '%s' %s; } 2>&1", f->dir, test_trail_bin(), args);
    return test_run(f->cmd, f->out, sizeof f->out);
}

/* A shell command (printf-style) in the fixture's directory, stdout and stderr into f->out. */
static int test_run_fmt(fx *f, const char *fmt, ...) {
    char c[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c, sizeof c, fmt, ap);
    va_end(ap);
    snprintf(f->cmd, sizeof f->cmd, "cd '%s' && { %s; } 2>&1", f->dir, c);
    return test_run(f->cmd, f->out, sizeof f->out);
}

static void write_file(fx *f, const char *name, const char *data, size_t n) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static void write_str(fx *f, const char *name, const char *s) {
    write_file(f, name, s, strlen(s));
}

static void append_str(fx *f, const char *name, const char *s) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "ab");
    assert_non_null(fp);
    fputs(s, fp);
    fclose(fp);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f || !test_mkdtemp(f->dir, sizeof f->dir)) return -1;
    *state = f;
    if (trail(f, "model init --out m.bin --dim 16 --signatures 4 --bits 3 --item-rows 4096 "
                 "--cat-rows 64 --seed 1") != 0) {
        fprintf(stderr, "%s\n", f->out);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    test_rmtree(f->dir);
    free(f);
    return 0;
}

#define HAS(s)                                                                                     \
    do {                                                                                           \
        if (!strstr(f->out, (s))) fail_msg("no \"%s\" in:\n%s", (s), f->out);                      \
    } while (0)

// ---------------------------------------------------------------------------------------------
// import

/* n lines of the form fmt % i */
static void write_lines(fx *f, const char *name, const char *head, const char *fmt, int n) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    fputs(head, fp);
    for (int i = 0; i < n; i++)
        fprintf(fp, fmt, i, i);
    fclose(fp);
}

static int count(const char *s, const char *sub) {
    int k = 0;
    for (const char *p = s; (p = strstr(p, sub)) != NULL; p += strlen(sub))
        k++;
    return k;
}

static void test_import_all_malformed(void **state) {
    fx *f = *state;
    /* MovieLens ratings with ';' for ',': every row malformed */
    write_str(f, "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n");
    write_lines(f, "ratings.csv", "userId,movieId,rating,timestamp\n", "%d;1;4.0;96498%04d\n",
                5000);
    assert_int_equal(trail(f, "import movielens ratings.csv --out ml.jsonl"), 1);
    assert_int_equal(count(f->out, "malformed row skipped: 1 field, expected 4"), 20);
    HAS("ratings.csv:2: malformed row skipped: 1 field, expected 4");
    HAS("... 4980 more malformed rows skipped (5000 in all");
    HAS("nothing imported from ratings.csv");
    HAS("0 events written");

    /* taobao: each reason names the field */
    write_str(f, "tb.csv",
              "1,x,100,pv,1511544070\n1,10,100,zz,1511544070\n1,10,100,pv,99999999999\n"
              "1,10\n");
    assert_int_equal(trail(f, "import taobao tb.csv --out tb.jsonl"), 1);
    HAS("tb.csv:1: malformed row skipped: item_id 'x' is not an integer");
    HAS("tb.csv:2: malformed row skipped: behavior 'zz' is not pv, cart, fav or buy");
    HAS("tb.csv:3: malformed row skipped: field 'ts'");
    HAS("tb.csv:4: malformed row skipped: 2 fields, expected 5");
    HAS("nothing imported from tb.csv");

    /* an empty file imports nothing: an error too */
    write_str(f, "empty.csv", "");
    assert_int_equal(trail(f, "import taobao empty.csv --out e.jsonl"), 1);
    HAS("nothing imported from empty.csv");

    /* some malformed among many good rows: exit 0, counted */
    write_lines(f, "ok.csv", "", "1,%d,100,pv,151154%04d\n", 100);
    append_str(f, "ok.csv", "1,oops,100,pv,1511549999\n2,1,1,pv,1511549999\n");
    assert_int_equal(trail(f, "import taobao ok.csv --out ok.jsonl"), 0);
    HAS("101 events written (101 rows read, 1 malformed rows skipped");
}

static void test_import_nul_byte(void **state) {
    fx *f = *state;
    /* a NUL inside the last field: the row used to import as 1511544090 with the tail ignored */
    static const char tb[] = "1,10,100,pv,1511544070\n2,12,101,cart,1511544090\0junk\n"
                             "3,14,102,pv,15115\0"
                             "44092\n4,15,103,pv,1511544099\n";
    write_file(f, "nul.csv", tb, sizeof tb - 1);
    assert_int_equal(trail(f, "import taobao nul.csv --out nul.jsonl && cat nul.jsonl"), 0);
    HAS("nul.csv:2: malformed row skipped: NUL byte at byte 25");
    HAS("nul.csv:3: malformed row skipped: NUL byte at byte 18");
    HAS("\"user_id\":1,");
    HAS("\"user_id\":4,");
    HAS("2 events written (2 rows read, 2 malformed rows skipped");
    assert_null(strstr(f->out, "\"user_id\":2,"));
    assert_null(strstr(f->out, "\"user_id\":3,"));
}

static void test_import_last_line_without_newline(void **state) {
    fx *f = *state;
    /* complete: user 2 is kept (it used to be dropped as "cut") */
    write_str(f, "nonl.csv",
              "1,10,100,pv,1511544070\n2,12,101,cart,1511544090\n2,13,101,pv,1511544091");
    assert_int_equal(trail(f, "import taobao nonl.csv --out nonl.jsonl && cat nonl.jsonl"), 0);
    HAS("3 events written (3 rows read, 0 malformed rows skipped, 0 rows of the truncated");
    HAS("\"item_id\":13,\"category_id\":101,\"action\":\"click\",\"ts\":1511544091}");
    /* a CRLF file cut between CR and LF: complete too */
    write_str(f, "cr.csv", "1,10,100,pv,1511544070\r\n2,12,101,cart,1511544090\r");
    assert_int_equal(trail(f, "import taobao cr.csv --out cr.jsonl"), 0);
    HAS("2 events written");
    /* cut inside the timestamp (parses, but fewer digits): user 2 dropped */
    write_str(f, "cut.csv", "1,10,100,pv,1511544070\n2,12,101,cart,1511544090\n2,13,101,pv,15115");
    assert_int_equal(trail(f, "import taobao cut.csv --out cut.jsonl"), 0);
    HAS("1 events written (2 rows read, 0 malformed rows skipped, 1 rows of the truncated");
    HAS("dropped user 2 (1 rows)");
    /* cut inside the behavior: user 2 dropped */
    write_str(f, "cut2.csv", "1,10,100,pv,1511544070\n2,12,101,cart,1511544090\n2,13,101,ca");
    assert_int_equal(trail(f, "import taobao cut2.csv --out cut2.jsonl"), 0);
    HAS("1 events written (2 rows read, 0 malformed rows skipped, 1 rows of the truncated");
}

static void test_import_movies_csv_unusable(void **state) {
    fx *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/mv/dir/movies.csv'", f->dir);
    assert_int_equal(system(cmd), 0);
    write_str(f, "mv/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n");
    write_str(f, "mv/dir/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n");
    /* empty: every category would have been 0, exit 0 */
    write_str(f, "mv/movies.csv", "");
    assert_int_equal(trail(f, "import movielens mv/ratings.csv --out mv.jsonl"), 1);
    HAS("mv/movies.csv: no movie rows");
    /* only the header */
    write_str(f, "mv/movies.csv", "movieId,title,genres\n");
    assert_int_equal(trail(f, "import movielens mv/ratings.csv --out mv.jsonl"), 1);
    HAS("mv/movies.csv: no movie rows");
    /* unreadable (a directory opens but does not read) */
    assert_int_equal(trail(f, "import movielens mv/dir/ratings.csv --out mv.jsonl"), 1);
    HAS("mv/dir/movies.csv: Is a directory");
    /* missing */
    snprintf(cmd, sizeof cmd, "rm -f '%s/mv/movies.csv'", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(trail(f, "import movielens mv/ratings.csv --out mv.jsonl"), 1);
    HAS("mv/movies.csv: No such file");
    /* a usable one */
    write_str(f, "mv/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n");
    assert_int_equal(trail(f, "import movielens mv/ratings.csv --out mv.jsonl && cat mv.jsonl"), 0);
    HAS("\"category_id\":2,");
}

static void test_import_movielens_ungrouped(void **state) {
    fx *f = *state;
    /* users interleaved, as in ML-100k's u.data: each user's ratings must come out together and in
     * time order (ties in file order), not in runs of consecutive rows */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/ug'", f->dir);
    assert_int_equal(system(cmd), 0);
    write_str(f, "ug/movies.csv", "movieId,title,genres\n1,A,Action\n2,B,Comedy\n3,C,Drama\n");
    write_str(f, "ug/ratings.csv",
              "userId,movieId,rating,timestamp\n"
              "7,1,4.0,30\n2,2,4.0,20\n7,3,3.0,10\n2,1,3.0,5\n7,2,1.0,30\n"
              "2,3,5.0,50\n");
    assert_int_equal(trail(f, "import movielens ug/ratings.csv --out ug.jsonl >/dev/null && "
                              "cat ug.jsonl"),
                     0);
    const char *want =
        "{\"user_id\":2,\"item_id\":1,\"category_id\":1,\"action\":\"rate\",\"ts\":5}\n"
        "{\"user_id\":2,\"item_id\":2,\"category_id\":5,\"action\":\"rate\",\"ts\":20}\n"
        "{\"user_id\":2,\"item_id\":3,\"category_id\":8,\"action\":\"rate\",\"ts\":50}\n"
        "{\"user_id\":7,\"item_id\":3,\"category_id\":8,\"action\":\"rate\",\"ts\":10}\n"
        "{\"user_id\":7,\"item_id\":1,\"category_id\":1,\"action\":\"rate\",\"ts\":30}\n"
        "{\"user_id\":7,\"item_id\":2,\"category_id\":5,\"action\":\"rate\",\"ts\":30}\n";
    if (strcmp(f->out, want)) fail_msg("movielens import, users interleaved:\n%s", f->out);
}

// ---------------------------------------------------------------------------------------------
// encode

static void test_encode_all_rejected(void **state) {
    fx *f = *state;
    /* a MovieLens CSV given as events */
    write_str(f, "r.csv",
              "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n");
    assert_int_equal(trail(f, "encode --model m.bin --store s1 --input r.csv"), 1);
    HAS("every record read from r.csv was rejected (3 of 3)");
    HAS("s1/rejects.jsonl");
    /* the rejects were committed: the rerun has nothing left to read and says so with 0 */
    assert_int_equal(trail(f, "encode --model m.bin --store s1 --input r.csv"), 0);
    HAS("3 skipped");

    /* 1 MB of garbage, some of it in lines longer than the reader's limit; --json too */
    size_t n = 1 << 20;
    char *g = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        g[i] = (char)(x >> 32);
    }
    memset(g + 1000, 'a', 100000); /* one line > 64 KiB */
    write_file(f, "garbage.bin", g, n);
    free(g);
    assert_int_equal(trail(f, "encode --model m.bin --store s2 --input garbage.bin --json"), 1);
    HAS("\"applied\":0");
    HAS("\"complete\":true");
    HAS("every record read from garbage.bin was rejected");
    HAS("s2/rejects.jsonl");
}

static void test_encode_some_rejected_is_ok(void **state) {
    fx *f = *state;
    char buf[8192] = "";
    for (int i = 0; i < 50; i++) {
        char l[160];
        snprintf(
            l, sizeof l,
            "{\"user_id\":%d,\"item_id\":%d,\"category_id\":3,\"action\":\"click\",\"ts\":%d}\n",
            i % 5, 100 + i, 1500000000 + i);
        strcat(buf, l);
        if (i % 10 == 9) strcat(buf, "not an event\n");
    }
    write_str(f, "mixed.jsonl", buf);
    assert_int_equal(trail(f, "encode --model m.bin --store s3 --input mixed.jsonl"), 0);
    HAS("50 applied");
    HAS("5 rejected");
}

/* A store whose data.mdb was cut short: every command that opens it says so and exits 1 (it
 * used to die of SIGBUS on the first page past the end). */
static void test_truncated_store_refused(void **state) {
    fx *f = *state;
    write_str(f, "t.jsonl", "");
    for (int i = 0; i < 400; i++) {
        char l[160];
        snprintf(
            l, sizeof l,
            "{\"user_id\":%d,\"item_id\":%d,\"category_id\":3,\"action\":\"click\",\"ts\":%d}\n",
            i % 40, 100 + i, 1500000000 + i);
        write_str(f, "t.jsonl", l);
    }
    assert_int_equal(trail(f, "encode --model m.bin --store st --input t.jsonl"), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/st/data.mdb", f->dir);
    assert_int_equal(truncate(p, 12288), 0); /* three pages: the meta pages and one more */
    assert_int_equal(trail(f, "inspect --store st --digest"), 1);
    HAS("data.mdb is 12288 bytes");
    HAS("truncated");
    assert_int_equal(trail(f, "encode --model m.bin --store st --input t.jsonl"), 1);
    HAS("truncated");
}

/* A store whose meta says window = 0 (damaged, or edited by hand) is refused with a message
 * naming the values; it used to stop the process on an assertion. */
static void test_store_bad_meta_refused(void **state) {
    fx *f = *state;
    write_str(
        f, "b.jsonl",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000000}\n");
    assert_int_equal(trail(f, "encode --model m.bin --store sb --input b.jsonl"), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/sb", f->dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t zero = 0;
    MDB_val k = {6, (void *)"window"}, v = {8, &zero};
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, p, 0, 0664), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(trail(f, "inspect --store sb --digest"), 1);
    HAS("window=0");
    HAS("damaged");
}

/* A commit that fails (the map may not grow further) leaves the summary counting only what was
 * committed: the rerun skips exactly that many records. It used to count the failed batch too. */
static void test_failed_commit_counts(void **state) {
    fx *f = *state;
    assert_int_equal(
        trail(f, "gen --users 300 --items 3000 --events 30000 --seed 3 --out g3.jsonl"), 0);
    assert_int_equal(trail(f, "encode --model m.bin --store sf --input g3.jsonl --batch 1000 "
                              "--map-size 512K --map-max 1M"),
                     1);
    HAS("were not applied");
    unsigned long long done = 0, skipped = 0;
    const char *p = strstr(f->out, "encode g3.jsonl: ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "encode g3.jsonl: %llu records", &done), 1);
    assert_true(done > 0 && done % 1000 == 0); /* whole batches only */
    assert_int_equal(trail(f, "encode --model m.bin --store sf --input g3.jsonl --batch 1000 "
                              "--map-max 1G"),
                     0);
    p = strstr(f->out, " skipped (already applied)");
    assert_non_null(p);
    while (p > f->out && p[-1] >= '0' && p[-1] <= '9')
        p--;
    assert_int_equal(sscanf(p, "%llu", &skipped), 1);
    assert_int_equal(skipped, done);
}

/* A mistyped store path is an error for the readers (serve, rank, inspect), not an empty store
 * created on the spot that scores everyone as unknown. */
static void test_readers_refuse_missing_store(void **state) {
    fx *f = *state;
    assert_int_equal(trail(f, "serve --model m.bin --store typo --listen 127.0.0.1:0"), 1);
    HAS("no store there");
    write_str(f, "c.txt", "1,2\n");
    assert_int_equal(trail(f, "rank --model m.bin --store typo --user 1 --candidates c.txt"), 1);
    HAS("store typo");
    assert_int_equal(trail(f, "inspect --store typo --digest"), 1);
    char p[400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/typo", f->dir);
    assert_int_not_equal(stat(p, &sb), 0); /* nothing was created */
}

// ---------------------------------------------------------------------------------------------
// produce

/* A loopback port nothing listens on (bound, read back, closed). */
static int dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t n = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_produce_dead_broker(void **state) {
    fx *f = *state;
    write_str(
        f, "ev.jsonl",
        "{\"user_id\":1,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000000}\n"
        "{\"user_id\":2,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000001}\n"
        "{\"user_id\":3,\"item_id\":2,\"category_id\":3,\"action\":\"click\",\"ts\":1500000002}\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* `timeout` turns the old hang into 124; the bound under test is the 2 s message timeout */
    int rc = test_run_fmt(f,
                          "timeout 30 '%s' produce --brokers 127.0.0.1:%d --topic t --input "
                          "ev.jsonl -X kafka.message.timeout.ms=2000",
                          test_trail_bin(), dead_port());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc != 1) fail_msg("produce to a dead broker: exit %d after %.1f s:\n%s", rc, secs, f->out);
    assert_true(secs < 15);
    HAS("undelivered of 3 sent (0 delivered, 0 failed; message.timeout.ms=2000)");
    HAS("3 of 3 events were not delivered to t at 127.0.0.1:");
    HAS("produced 3 events to t (delivered 0, failed 3, rejected 0)");

    /* without -X the bound is 30 s, not forever (message.timeout.ms=0); 3 s show it is in force.
     * KILL, not TERM: on TERM produce stops waiting but its producer's close still flushes 10 s */
    rc = test_run_fmt(f,
                      "timeout -s KILL 3 '%s' produce --brokers 127.0.0.1:%d --topic t "
                      "--input ev.jsonl",
                      test_trail_bin(), dead_port());
    assert_int_equal(rc, 137);
    HAS("undelivered of 3 sent (0 delivered, 0 failed; message.timeout.ms=30000)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_all_malformed),
        cmocka_unit_test(test_import_nul_byte),
        cmocka_unit_test(test_import_last_line_without_newline),
        cmocka_unit_test(test_import_movies_csv_unusable),
        cmocka_unit_test(test_import_movielens_ungrouped),
        cmocka_unit_test(test_produce_dead_broker),
        cmocka_unit_test(test_encode_all_rejected),
        cmocka_unit_test(test_encode_some_rejected_is_ok),
        cmocka_unit_test(test_truncated_store_refused),
        cmocka_unit_test(test_store_bad_meta_refused),
        cmocka_unit_test(test_failed_commit_counts),
        cmocka_unit_test(test_readers_refuse_missing_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
