/*
 * The libxenstore peer of ./run-bench.sh: the system's C client (xenstore-utils' libxenstore.so.4,
 * header from libxen-dev) doing the same work as our client, against the same daemon socket
 * (XENSTORED_PATH, set by the caller).
 *
 *   libxs_bench OP THREADS HANDLES WARMUP_MS MEASURE_MS PATH VALUE_LEN
 *
 * OP is `read` or `write`. THREADS threads loop on one synchronous xs_read/xs_write each, over
 * HANDLES connections (thread i uses handle i % HANDLES: 1 handle = libxenstore's shared-handle
 * case, where its request mutex lets one request through at a time). Every result is checked
 * (a read must return VALUE_LEN bytes). After WARMUP_MS the ops done in the next MEASURE_MS are
 * counted; prints `ops_per_sec=N`. Exit status 1, with a message, on any failure.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

#define MAX_THREADS 64

/* One counter per thread, each on its own cache line so counting does not bounce lines. */
struct worker {
    unsigned long ops;
    struct xs_handle *h;
    char pad[64 - sizeof(unsigned long) - sizeof(void *)];
} __attribute__((aligned(64)));

static struct worker workers[MAX_THREADS];
static int stop;
static int write_op;
static const char *path;
static char *value;
static unsigned int value_len;

static void die(const char *what)
{
    fprintf(stderr, "libxs_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        if (write_op) {
            if (!xs_write(w->h, XBT_NULL, path, value, value_len))
                die("xs_write");
        } else {
            unsigned int len;
            void *v = xs_read(w->h, XBT_NULL, path, &len);
            if (!v)
                die("xs_read");
            if (len != value_len) {
                fprintf(stderr, "libxs_bench: read %u bytes, expected %u\n", len, value_len);
                exit(1);
            }
            free(v);
        }
        __atomic_store_n(&w->ops, w->ops + 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long total_ops(int threads)
{
    unsigned long sum = 0;
    for (int i = 0; i < threads; i++)
        sum += __atomic_load_n(&workers[i].ops, __ATOMIC_RELAXED);
    return sum;
}

static void sleep_ms(long ms)
{
    struct timespec d = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&d, &d) && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s read|write THREADS HANDLES WARMUP_MS MEASURE_MS PATH VALUE_LEN\n",
                argv[0]);
        return 2;
    }
    write_op = strcmp(argv[1], "write") == 0;
    int threads = atoi(argv[2]), handles = atoi(argv[3]);
    long warmup_ms = atol(argv[4]), measure_ms = atol(argv[5]);
    path = argv[6];
    value_len = (unsigned int)atoi(argv[7]);
    if (threads < 1 || threads > MAX_THREADS || handles < 1 || handles > threads
        || (!write_op && strcmp(argv[1], "read") != 0)) {
        fprintf(stderr, "libxs_bench: bad arguments\n");
        return 2;
    }
    value = malloc(value_len + 1);
    if (!value)
        die("malloc");
    memset(value, 'v', value_len);

    struct xs_handle *h[MAX_THREADS];
    for (int i = 0; i < handles; i++)
        if (!(h[i] = xs_open(0)))
            die("xs_open (is XENSTORED_PATH set?)");
    pthread_t tid[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        workers[i].h = h[i % handles];
        if (pthread_create(&tid[i], NULL, run, &workers[i]))
            die("pthread_create");
    }
    sleep_ms(warmup_ms);
    unsigned long ops0 = total_ops(threads);
    double t0 = now();
    sleep_ms(measure_ms);
    unsigned long ops1 = total_ops(threads);
    double t1 = now();
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < handles; i++)
        xs_close(h[i]);
    printf("ops_per_sec=%.0f\n", (ops1 - ops0) / (t1 - t0));
    return 0;
}
