/* test_proc.h: running the trail binary as child processes in tests (spawn with output to files,
 * wait with a bound, sleep). POSIX only. */
#ifndef TRAIL_TEST_PROC_H
#define TRAIL_TEST_PROC_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline void test_msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Run argv (argv[0] a path) with stdout to out and stderr to err (the same path is fine);
 * append != 0 appends instead of truncating. Returns the pid. */
static inline pid_t test_spawn(char *const argv[], const char *out, const char *err, int append) {
    pid_t pid = fork();
    if (pid == 0) {
        int fl = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
        int fo = open(out, fl, 0644);
        int fe = strcmp(out, err) ? open(err, fl, 0644) : fo;
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Exit status, 128 + signal if killed, or -1 after timeout_ms (the child is then killed). */
static inline int test_wait_exit(pid_t pid, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 20) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        test_msleep(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Run TRAIL_BIN (test_common.h's test_trail_bin) with args (NULL-terminated), stdout and stderr
 * to out (NULL: /dev/null), for 120 s at most: test_wait_exit's result. */
static inline int test_run_trail(const char *out, const char *const *args) {
    const char *argv[32];
    int n = 0;
    argv[n++] = test_trail_bin();
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = test_spawn((char *const *)(uintptr_t)argv, out ? out : "/dev/null",
                           out ? out : "/dev/null", 0);
    return test_wait_exit(pid, 120000);
}

#endif
