/* enc_import.c: `trail import taobao|movielens`: turn the public datasets into event files.
 *
 * Taobao UserBehavior (user_id,item_id,category_id,behavior_type,timestamp; no header; rows of a
 * user contiguous and in time order): pv -> click, cart, fav, buy, in file order. A file cut in the
 * middle of a line (the shipped head is) has a truncated last user: every row of the user whose
 * line is cut is dropped. A last line without a newline counts as cut when it does not parse, or
 * when its timestamp has fewer digits than the row before it (cut inside the number); otherwise
 * it is a complete row and its user is kept. Rows outside the dataset's nominal 9-day window are
 * kept: they are data.
 *
 * MovieLens ratings.csv (userId,movieId,rating,timestamp; header; CRLF or LF): each rating becomes
 * action "rate"; the category is the movie's first genre in movies.csv (read from the same
 * directory), mapped to the fixed ids of genre_ids below. The ratings are written grouped by user
 * (users in increasing id), each user's in time order (ties in file order), wherever in the file a
 * user's rows are: ratings.csv lists a user's ratings by movie, ML-100k's u.data (as CSV) mixes
 * users. So every rating is held in memory until the end: 48 bytes each (ML-25M: 1.2 GB, up to
 * twice that while the buffer grows). The rating value is not part of the event.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "sch_event.h"
#include "enc_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MovieLens genres -> category ids (stable; 0 = no genre listed or movie not in movies.csv). */
static const char *const genre_ids[] = {"(no genres listed)",
                                        "Action",
                                        "Adventure",
                                        "Animation",
                                        "Children",
                                        "Comedy",
                                        "Crime",
                                        "Documentary",
                                        "Drama",
                                        "Fantasy",
                                        "Film-Noir",
                                        "Horror",
                                        "IMAX",
                                        "Musical",
                                        "Mystery",
                                        "Romance",
                                        "Sci-Fi",
                                        "Thriller",
                                        "War",
                                        "Western"};
#define N_GENRES (sizeof genre_ids / sizeof genre_ids[0])

typedef struct evbuf {
    sch_event *ev;
    size_t n, cap;
} evbuf;

static int evbuf_push(evbuf *b, const sch_event *e) {
    if (core_grow(&b->ev, &b->cap, b->n + 1, sizeof *b->ev, 1024)) return CORE_ENOMEM;
    b->ev[b->n++] = *e;
    return CORE_OK;
}

/* Split a CSV line (no quoting) into up to max fields; returns the count. Modifies line. */
static int csv_split(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ',') {
            *p = 0;
            f[n++] = p + 1;
        }
    }
    return n;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (!*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > SCH_ID_MAX) return -1;
    *out = v;
    return 0;
}

/* s shown in a message: at most 40 bytes, bytes outside printable ASCII as '?'. */
static const char *show(const char *s, char *buf, size_t cap) {
    size_t k = 0;
    for (; s[k] && k < 40 && k + 4 < cap; k++)
        buf[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
    if (s[k] && k + 4 < cap) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = 0;
    return buf;
}

/* Parse one row's fields into e; 0, or -1 with the reason in why. */
static int parse_row(char **f, int nf, int movielens, const uint8_t *genre, size_t n_genre,
                     sch_event *e, char *why, size_t cap) {
    static const char *const names[2][5] = {{"user_id", "item_id", "category_id", "behavior", "ts"},
                                            {"userId", "movieId", "rating", "timestamp", ""}};
    const int want = movielens ? 4 : 5, ts_col = movielens ? 3 : 4;
    char b[48];
    uint64_t ts;
    memset(e, 0, sizeof *e);
    if (nf != want) {
        snprintf(why, cap, "%d field%s, expected %d", nf, nf == 1 ? "" : "s", want);
        return -1;
    }
    int bad = parse_u64(f[0], &e->user_id)                     ? 0
              : parse_u64(f[1], &e->item_id)                   ? 1
              : !movielens && parse_u64(f[2], &e->category_id) ? 2
              : parse_u64(f[ts_col], &ts)                      ? ts_col
                                                               : -1;
    if (bad >= 0) {
        snprintf(why, cap, "%s '%s' is not an integer in 0..2^63-1", names[movielens][bad],
                 show(f[bad], b, sizeof b));
        return -1;
    }
    if (movielens) {
        e->action = SCH_ACTION_RATE;
        e->category_id = e->item_id < n_genre ? genre[e->item_id] : 0;
    } else {
        int a = sch_action_parse(f[3], strlen(f[3]));
        if (a < SCH_ACTION_CLICK || a > SCH_ACTION_BUY) {
            snprintf(why, cap, "behavior '%s' is not pv, cart, fav or buy",
                     show(f[3], b, sizeof b));
            return -1;
        }
        e->action = (uint8_t)a;
    }
    e->ts = (int64_t)ts;
    return sch_event_validate(e, why, cap) == CORE_OK ? 0 : -1;
}

#define IMPORT_SHOW_MAX 20 /* malformed rows reported one by one; the rest are counted */

static int flush_user(sch_writer *w, evbuf *b, uint64_t *written) {
    for (size_t i = 0; i < b->n; i++) {
        if (sch_writer_put(w, &b->ev[i])) return CORE_EIO;
    }
    *written += b->n;
    b->n = 0;
    return CORE_OK;
}

static int user_ts_cmp(const void *a, const void *b) {
    const sch_event *x = a, *y = b;
    if (x->user_id != y->user_id) return x->user_id < y->user_id ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    /* ties keep file order: request_id temporarily holds the row number */
    return x->request_id < y->request_id ? -1 : x->request_id > y->request_id;
}

/* Every event grouped by user (ascending id), each user's in time order, ties in file order;
 * request_id holds each event's row number on entry and is 0 on return. */
static void sort_by_user_time(evbuf *b) {
    if (b->n > 1) qsort(b->ev, b->n, sizeof *b->ev, user_ts_cmp); /* qsort(NULL, 0) is undefined */
    for (size_t i = 0; i < b->n; i++)
        b->ev[i].request_id = 0;
}

/* movies.csv beside ratings.csv (movieId,title,genres; a title may hold commas): each movie's
 * first genre as a category id, into *genre (movieId -> id, *n_genre entries). @return 0, or 1
 * after printing why (missing, unreadable, or without a movie row). */
static int load_genres(const char *in, uint8_t **genre, size_t *n_genre) {
    char mpath[PATH_MAX], *line = NULL;
    size_t cap = 0, n_movies = 0;
    ssize_t len;
    const char *slash = strrchr(in, '/');
    snprintf(mpath, sizeof mpath, "%.*smovies.csv", slash ? (int)(slash - in + 1) : 0, in);
    FILE *fm = fopen(mpath, "r");
    if (!fm) {
        fprintf(stderr, "trail import movielens: %s: %s\n", mpath, strerror(errno));
        return 1;
    }
    while ((len = getline(&line, &cap, fm)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        char *comma = strchr(line, ','), *last = strrchr(line, ',');
        uint64_t id;
        if (!comma || comma == last) continue;
        *comma = 0;
        if (parse_u64(line, &id) || id > 100000000) continue; /* the header, or junk */
        char *g = last + 1, *bar = strchr(g, '|');
        if (bar) *bar = 0;
        uint8_t cat = 0;
        for (size_t k = 0; k < N_GENRES; k++)
            if (!strcmp(g, genre_ids[k])) cat = (uint8_t)k;
        if (id >= *n_genre) {
            size_t nn = (size_t)id * 2 + 1024;
            uint8_t *p = core_realloc(*genre, nn);
            if (!p) break;
            memset(p + *n_genre, 0, nn - *n_genre);
            *genre = p;
            *n_genre = nn;
        }
        (*genre)[id] = cat;
        n_movies++;
    }
    /* an unreadable or empty movies.csv would silently give every rating category 0 */
    int rerr = ferror(fm) ? errno : 0, nomem = len > 0; /* the loop stopped early: realloc */
    fclose(fm);
    free(line); /* allocated by getline */
    if (rerr || nomem || n_movies == 0) {
        fprintf(stderr, "trail import movielens: %s: %s\n", mpath,
                nomem  ? "out of memory"
                : rerr ? strerror(rerr)
                       : "no movie rows (movieId,title,genres); the categories come from it");
        return 1;
    }
    return 0;
}

#define MALFORMED_HELP                                                                             \
    "Malformed rows are skipped, each reported with its line and reason (the first %d; then a\n"   \
    "count); exit status 1 when nothing was imported (every row malformed, or an empty file),\n"   \
    "0 otherwise, 2 on a usage error.\n"

static void taobao_help(FILE *f) {
    fprintf(f,
            "user_id,item_id,category_id,behavior,ts rows in file order; pv -> click, cart, fav,\n"
            "buy. A file cut inside its last line loses that last user entirely (a last line\n"
            "without a newline is cut if it does not parse or its timestamp has fewer digits\n"
            "than the row before; else it is whole and its user kept). Rows outside the\n"
            "dataset's nominal 9-day window are kept (they are data; filter "
            "downstream).\n" MALFORMED_HELP,
            IMPORT_SHOW_MAX);
}

static void movielens_help(FILE *f) {
    fprintf(f, "Each rating -> action \"rate\" (the rating value is not kept); output grouped by\n"
               "user (increasing id), each user's ratings in time order wherever they are in the\n"
               "file (all ratings held in memory: 48 bytes each); category = the movie's first\n"
               "genre in movies.csv (read from the directory of ratings.csv; missing, unreadable\n"
               "or without a movie row is an error) mapped to:\n   ");
    for (size_t k = 0; k < N_GENRES; k++)
        fprintf(f, " %zu=%s%s", k, genre_ids[k], k % 6 == 5 ? "\n   " : "");
    fprintf(f, "\n(0 also for a movie missing from movies.csv)\n" MALFORMED_HELP, IMPORT_SHOW_MAX);
}

const core_cmd enc_import_taobao_cmd = {"import taobao", "Taobao UserBehavior CSV -> event file",
                                        enc_cmd_import_taobao, NULL, taobao_help};
const core_cmd enc_import_movielens_cmd = {"import movielens",
                                           "MovieLens ratings.csv -> event file",
                                           enc_cmd_import_movielens, NULL, movielens_help};

static int import_run(int argc, char **argv, int movielens) {
    const char *out = NULL, *in = NULL;
    int binary = 0;
    const core_opt opts[] = {
        CORE_OPT_NEED("out", &out, "EVENTS", "the event file to write"),
        CORE_OPT_FLG("binary", &binary, "write the binary event file instead of JSON lines"),
        {CORE_OPT_ROW(movielens ? "ratings.csv" : "FILE", CORE_OPT_ARG, &in, NULL, "the input CSV"),
         .flags = CORE_OPT_REQUIRED},
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    int rc = core_opts_parse(movielens ? &enc_import_movielens_cmd : &enc_import_taobao_cmd, opts,
                             argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    char err[512], *line = NULL, *f[8];
    size_t cap = 0;
    ssize_t len;
    FILE *fi = NULL;
    sch_writer *w = NULL;
    evbuf ub = {0};
    uint8_t *genre = NULL; /* movieId -> category id */
    size_t n_genre = 0;
    uint64_t rows = 0, written = 0, bad = 0, dropped = 0, cur_user = 0, cut_user = 0, lineno = 0;
    int ret = 1, have_user = 0;

    if (movielens && load_genres(in, &genre, &n_genre)) goto out;
    if (!(fi = fopen(in, "r"))) {
        fprintf(stderr, "trail import: %s: %s\n", in, strerror(errno));
        goto out;
    }
    if (sch_writer_open(&w, out, binary, err, sizeof err)) {
        fprintf(stderr, "trail import: %s\n", err);
        goto out;
    }
    int partial = 0;
    size_t prev_ts_len = 0; /* digits of the last good row's timestamp */
    while ((len = getline(&line, &cap, fi)) > 0) {
        lineno++;
        /* no newline: the last line, complete or cut (a CRLF line cut before its LF is whole) */
        partial = line[len - 1] != '\n' && line[len - 1] != '\r';
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0) continue;
        if (movielens && lineno == 1 && !strncmp(line, "userId", 6)) continue;
        /* getline keeps NUL bytes; the field parsers would stop at one and read a prefix */
        const char *nul = memchr(line, 0, (size_t)len);
        int nf = csv_split(line, f, 6);
        sch_event e;
        char why[256];
        uint64_t rowuser;
        memset(&e, 0, sizeof e);
        int ok = !nul && !parse_row(f, nf, movielens, genre, n_genre, &e, why, sizeof why);
        if (nul) snprintf(why, sizeof why, "NUL byte at byte %zu", (size_t)(nul - line) + 1);
        rowuser = e.user_id;
        if (!ok) {
            if (partial) cut_user = parse_u64(f[0], &rowuser) ? cur_user : rowuser;
            if (!partial) { /* a bad complete row is reported; a cut last line is expected */
                if (++bad <= IMPORT_SHOW_MAX)
                    fprintf(stderr, "trail import: %s:%llu: malformed row skipped: %s\n", in,
                            (unsigned long long)lineno, why);
            }
            continue;
        }
        size_t ts_len = strlen(f[movielens ? 3 : 4]);
        if (partial && ts_len < prev_ts_len) { /* cut inside its timestamp */
            cut_user = rowuser;
            continue;
        }
        partial = 0; /* a last line without a newline that parses whole is a complete row */
        prev_ts_len = ts_len;
        rows++;
        cut_user = rowuser;
        /* taobao streams user by user; movielens keeps every rating until the end, since a
         * user's rows need not be together (ML-100k's are not) */
        if (!movielens && have_user && rowuser != cur_user && flush_user(w, &ub, &written)) goto io;
        cur_user = rowuser;
        have_user = 1;
        if (movielens) e.request_id = rows; /* the row number, for sort_by_user_time's ties */
        if (evbuf_push(&ub, &e)) goto out;
    }
    if (ferror(fi)) goto io;
    if (partial && movielens)
        fprintf(stderr, "trail import: the last line of %s is cut; skipped it\n", in);
    if (partial && !movielens && have_user && cut_user == cur_user) {
        /* the file was cut inside the last user's rows: drop that user */
        dropped = ub.n;
        ub.n = 0;
        fprintf(stderr, "trail import: the last line of %s is cut; dropped user %llu (%llu rows)\n",
                in, (unsigned long long)cur_user, (unsigned long long)dropped);
    }
    if (movielens) sort_by_user_time(&ub);
    if (flush_user(w, &ub, &written)) goto io;
    if (sch_writer_close(w)) {
        w = NULL;
        goto io;
    }
    w = NULL;
    if (bad > IMPORT_SHOW_MAX)
        fprintf(stderr,
                "trail import: ... %llu more malformed rows skipped (%llu in all; the first "
                "%d are shown)\n",
                (unsigned long long)(bad - IMPORT_SHOW_MAX), (unsigned long long)bad,
                IMPORT_SHOW_MAX);
    printf("import %s %s -> %s: %llu events written (%llu rows read, %llu malformed rows skipped, "
           "%llu rows of the truncated last user dropped)\n",
           movielens ? "movielens" : "taobao", in, out, (unsigned long long)written,
           (unsigned long long)rows, (unsigned long long)bad, (unsigned long long)dropped);
    ret = 0;
    if (written == 0) { /* an empty file, the wrong file, the wrong format: not a success */
        fprintf(stderr,
                "trail import: nothing imported from %s (%llu lines: %llu malformed rows, "
                "%llu rows of a cut last user); is it a %s file?\n",
                in, (unsigned long long)lineno, (unsigned long long)bad,
                (unsigned long long)dropped,
                movielens ? "MovieLens ratings.csv" : "Taobao UserBehavior.csv");
        ret = 1;
    }
    goto out;
io:
    fprintf(stderr, "trail import: I/O error on %s or %s: %s\n", in, out, strerror(errno));
out:
    if (w) sch_writer_close(w);
    if (fi) fclose(fi);
    free(line);
    core_free(ub.ev);
    core_free(genre);
    return ret;
}

int enc_cmd_import_taobao(int argc, char **argv) {
    return import_run(argc, argv, 0);
}
int enc_cmd_import_movielens(int argc, char **argv) {
    return import_run(argc, argv, 1);
}
