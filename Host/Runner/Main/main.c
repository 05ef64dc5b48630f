/* yard-plugin-runner: loads one plugin out of the host's process and carries
 * the PluginAPI over the channel on fd 3 (switchyard_runner_protocol.h).
 *
 * The plugin sees an ordinary sy_host_t. Every host service it asks for
 * (sy.http/1, sy.secrets/1, sy.artifacts/1, ...) is a proxy that sends the
 * arguments to the host and waits for the answer, so the runner itself needs
 * no network, no vault and no store: the host enforces the manifest exactly
 * as it does for a plugin in its own process.
 *
 * Threads: the main thread reads frames; each call runs on a worker thread
 * (calls block while their services wait on the host); writes to the channel
 * are serialized by one lock. The runner exits when the channel closes or
 * its parent goes away.
 *
 * Usage (the host builds this command line; see PluginRunnerProcess.swift):
 *   yard-plugin-runner --library LIB [--read DIR]... [--scratch DIR]
 *       [--services log,clock,http,secrets,artifacts,crypto,kv,process]
 *       [--system-clock] [--host-version V] [--parent PID]
 *       [--memory-mb N] [--cpu-seconds N] [--file-mb N] [--open-files N]
 *       [--max-document-bytes N] [--no-sandbox]
 *   yard-plugin-runner --probe [same sandbox options]
 *       applies the sandbox, tries to break out of it, reports, exits */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "switchyard/switchyard.h"
#include "switchyard_runner_protocol.h"
#include "sandbox.h"

/* ---- byte buffers and frames ---- */

typedef struct buffer {
    unsigned char *data;
    size_t size;
    size_t capacity;
} buffer_t;

static void buffer_reserve(buffer_t *b, size_t more) {
    if (b->size + more <= b->capacity) return;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < b->size + more) capacity *= 2;
    unsigned char *data = realloc(b->data, capacity);
    if (!data) _exit(70); /* out of memory: the host reports the crash */
    b->data = data;
    b->capacity = capacity;
}

static void put_bytes_raw(buffer_t *b, const void *p, size_t n) {
    if (n == 0) return;
    buffer_reserve(b, n);
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_u8(buffer_t *b, uint8_t v) { put_bytes_raw(b, &v, 1); }
static void put_u32(buffer_t *b, uint32_t v) {
    unsigned char le[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
    put_bytes_raw(b, le, 4);
}
static void put_u64(buffer_t *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_bytes(buffer_t *b, const void *p, size_t n) {
    put_u32(b, (uint32_t)n);
    put_bytes_raw(b, p, n);
}

static void frame_begin(buffer_t *b, uint8_t kind, uint64_t id) {
    b->size = 0;
    put_u32(b, 0);
    put_u8(b, kind);
    put_u64(b, id);
}

/* A payload being read. Host frames are trusted, but a short one still must
 * not read past its end. */
typedef struct cursor {
    const unsigned char *p;
    const unsigned char *end;
    int ok;
} cursor_t;

static uint64_t get_le(cursor_t *c, int n) {
    if (!c->ok || c->end - c->p < n) { c->ok = 0; return 0; }
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)c->p[i] << (8 * i);
    c->p += n;
    return v;
}

static sy_str_t get_bytes(cursor_t *c) {
    uint32_t n = (uint32_t)get_le(c, 4);
    sy_str_t s = { NULL, 0 };
    if (!c->ok || (size_t)(c->end - c->p) < n) { c->ok = 0; return s; }
    s.data = (const char *)c->p;
    s.size = n;
    c->p += n;
    return s;
}

/* ---- the channel ---- */

static int channel = SYR_CHANNEL_FD;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static void send_frame(buffer_t *b) {
    uint32_t size = (uint32_t)(b->size - 4);
    unsigned char le[4] = { (unsigned char)size, (unsigned char)(size >> 8), (unsigned char)(size >> 16), (unsigned char)(size >> 24) };
    memcpy(b->data, le, 4);
    pthread_mutex_lock(&write_lock);
    size_t offset = 0;
    while (offset < b->size) {
        ssize_t n = write(channel, b->data + offset, b->size - offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0); /* the host is gone */
        offset += (size_t)n;
    }
    pthread_mutex_unlock(&write_lock);
}

static int read_full(int fd, void *p, size_t n) {
    size_t offset = 0;
    while (offset < n) {
        ssize_t got = read(fd, (unsigned char *)p + offset, n - offset);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        offset += (size_t)got;
    }
    return 0;
}

/* ---- the plugin and the host it sees ---- */

static const sy_plugin_t *plugin;
static sy_host_t host;
static unsigned offered_services; /* bit SYR_SVC_* */
static int system_clock;
static size_t max_document_bytes = 64u << 20;

/* sy_call_t.host_data of every call: the call id the host knows it by. */
typedef struct runner_call {
    uint64_t call_id;
} runner_call_t;

/* ---- service requests waiting for the host's answer ---- */

typedef struct waiter {
    struct waiter *next;
    uint64_t id;
    int done;
    int32_t status;
    int64_t value;
    unsigned char *frame; /* owns `output` */
    sy_str_t output;
    pthread_cond_t cond;
} waiter_t;

static pthread_mutex_t waiters_lock = PTHREAD_MUTEX_INITIALIZER;
static waiter_t *waiters;
static uint64_t next_service_id = 1;

static uint64_t call_id_of(const sy_call_t *call) {
    if (!call || call->host != &host || !call->host_data) return 0;
    return ((const runner_call_t *)call->host_data)->call_id;
}

static void sink_write(const sy_sink_t *sink, const void *data, size_t size) {
    /* A sink smaller than v1.0's has no write we could trust (version.h). */
    if (sink && sink->struct_size >= SY_SINK_V1_0_SIZE && sink->write && size > 0) sink->write(sink, (const char *)data, size);
}

/* Sends one service request and, unless `answer` is 0, waits for the reply;
 * copies its output into `out`. */
static int32_t service(const sy_call_t *call, uint8_t svc, uint8_t fn, int64_t value, int count,
                       const sy_str_t *args, const sy_sink_t *out, int64_t *value_out, int answer) {
    waiter_t w;
    memset(&w, 0, sizeof w);
    buffer_t b = { NULL, 0, 0 };
    pthread_mutex_lock(&waiters_lock);
    w.id = next_service_id++;
    pthread_mutex_unlock(&waiters_lock);
    frame_begin(&b, SYR_FRAME_SERVICE, w.id);
    put_u64(&b, call_id_of(call));
    put_u8(&b, svc);
    put_u8(&b, fn);
    put_u64(&b, (uint64_t)value);
    put_u8(&b, (uint8_t)count);
    for (int i = 0; i < count; i++) put_bytes(&b, args[i].data, args[i].data ? args[i].size : 0);
    if (!answer) {
        send_frame(&b);
        free(b.data);
        return SY_OK;
    }
    pthread_cond_init(&w.cond, NULL);
    pthread_mutex_lock(&waiters_lock);
    w.next = waiters;
    waiters = &w;
    pthread_mutex_unlock(&waiters_lock);
    send_frame(&b);
    free(b.data);
    pthread_mutex_lock(&waiters_lock);
    while (!w.done) pthread_cond_wait(&w.cond, &waiters_lock);
    pthread_mutex_unlock(&waiters_lock);
    pthread_cond_destroy(&w.cond);
    if (w.output.size > 0) sink_write(out, w.output.data, w.output.size);
    if (value_out) *value_out = w.value;
    free(w.frame);
    return w.status;
}

static void answer_service(uint64_t id, cursor_t *c, unsigned char *frame) {
    int32_t status = (int32_t)get_le(c, 4);
    int64_t value = (int64_t)get_le(c, 8);
    sy_str_t output = get_bytes(c);
    if (!c->ok) _exit(2);
    pthread_mutex_lock(&waiters_lock);
    waiter_t **link = &waiters;
    while (*link && (*link)->id != id) link = &(*link)->next;
    waiter_t *w = *link;
    if (w) {
        *link = w->next;
        w->status = status;
        w->value = value;
        w->output = output;
        w->frame = frame;
        w->done = 1;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&waiters_lock);
    if (!w) free(frame);
}

/* ---- proxies for the host services (see ext/ in the PluginAPI) ---- */

static void p_log(const sy_call_t *call, int32_t level, sy_str_t message) {
    service(call, SYR_SVC_LOG, 0, level, 1, &message, NULL, NULL, 0);
}

static int64_t p_now_unix_ms(const sy_call_t *call) {
    if (system_clock) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    int64_t v = 0;
    service(call, SYR_SVC_CLOCK, 0, 0, 0, NULL, NULL, &v, 1);
    return v;
}

static int64_t p_monotonic_ns(const sy_call_t *call) {
    if (system_clock) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    int64_t v = 0;
    service(call, SYR_SVC_CLOCK, 1, 0, 0, NULL, NULL, &v, 1);
    return v;
}

static sy_status_t p_http_request(const sy_call_t *call, sy_str_t request, const sy_sink_t *response) {
    return service(call, SYR_SVC_HTTP, 0, 0, 1, &request, response, NULL, 1);
}

static sy_status_t p_secrets_get(const sy_call_t *call, sy_str_t name, const sy_sink_t *value) {
    return service(call, SYR_SVC_SECRETS, 0, 0, 1, &name, value, NULL, 1);
}

static sy_status_t p_artifacts_put(const sy_call_t *call, sy_str_t media_type, const void *data, size_t size, const sy_sink_t *handle) {
    sy_str_t args[2] = { media_type, { (const char *)data, data ? size : 0 } };
    return service(call, SYR_SVC_ARTIFACTS, 0, 0, 2, args, handle, NULL, 1);
}

static sy_status_t p_artifacts_download(const sy_call_t *call, sy_str_t request, const sy_sink_t *handle) {
    return service(call, SYR_SVC_ARTIFACTS, 1, 0, 1, &request, handle, NULL, 1);
}

static sy_status_t p_artifacts_read(const sy_call_t *call, sy_str_t handle, const sy_sink_t *data) {
    return service(call, SYR_SVC_ARTIFACTS, 2, 0, 1, &handle, data, NULL, 1);
}

static sy_status_t p_sha256(const sy_call_t *call, sy_str_t data, const sy_sink_t *digest) {
    return service(call, SYR_SVC_CRYPTO, 0, 0, 1, &data, digest, NULL, 1);
}

static sy_status_t p_hmac_sha256(const sy_call_t *call, sy_str_t key, sy_str_t data, const sy_sink_t *mac) {
    sy_str_t args[2] = { key, data };
    return service(call, SYR_SVC_CRYPTO, 1, 0, 2, args, mac, NULL, 1);
}

static sy_status_t p_ed25519_verify(const sy_call_t *call, sy_str_t public_key, sy_str_t signature, sy_str_t message) {
    sy_str_t args[3] = { public_key, signature, message };
    return service(call, SYR_SVC_CRYPTO, 2, 0, 3, args, NULL, NULL, 1);
}

static sy_status_t p_jwt_hs256(const sy_call_t *call, sy_str_t claims, sy_str_t secret, const sy_sink_t *token) {
    sy_str_t args[2] = { claims, secret };
    return service(call, SYR_SVC_CRYPTO, 3, 0, 2, args, token, NULL, 1);
}

static sy_status_t p_kv_get(const sy_call_t *call, sy_str_t key, const sy_sink_t *value) {
    return service(call, SYR_SVC_KV, 0, 0, 1, &key, value, NULL, 1);
}

static sy_status_t p_kv_put(const sy_call_t *call, sy_str_t key, sy_str_t value, int64_t ttl_ms) {
    sy_str_t args[2] = { key, value };
    return service(call, SYR_SVC_KV, 1, ttl_ms, 2, args, NULL, NULL, 1);
}

static sy_status_t p_kv_remove(const sy_call_t *call, sy_str_t key) {
    return service(call, SYR_SVC_KV, 2, 0, 1, &key, NULL, NULL, 1);
}

static sy_status_t p_process_start(const sy_call_t *call, sy_str_t request, const sy_sink_t *handle) {
    return service(call, SYR_SVC_PROCESS, 0, 0, 1, &request, handle, NULL, 1);
}

static sy_status_t p_process_status(const sy_call_t *call, sy_str_t handle, const sy_sink_t *status) {
    return service(call, SYR_SVC_PROCESS, 1, 0, 1, &handle, status, NULL, 1);
}

static sy_status_t p_process_wait(const sy_call_t *call, sy_str_t handle, int64_t timeout_ms, const sy_sink_t *status) {
    return service(call, SYR_SVC_PROCESS, 2, timeout_ms, 1, &handle, status, NULL, 1);
}

static sy_status_t p_process_cancel(const sy_call_t *call, sy_str_t handle, const sy_sink_t *outcome) {
    return service(call, SYR_SVC_PROCESS, 3, 0, 1, &handle, outcome, NULL, 1);
}

static sy_status_t p_process_locate(const sy_call_t *call, sy_str_t name, const sy_sink_t *answer) {
    return service(call, SYR_SVC_PROCESS, 4, 0, 1, &name, answer, NULL, 1);
}

static const sy_service_log_t log_table = { sizeof(sy_service_log_t), p_log };
static const sy_service_clock_t clock_table = { sizeof(sy_service_clock_t), p_now_unix_ms, p_monotonic_ns };
static const sy_service_http_t http_table = { sizeof(sy_service_http_t), p_http_request };
static const sy_service_secrets_t secrets_table = { sizeof(sy_service_secrets_t), p_secrets_get };
static const sy_service_artifacts_t artifacts_table = { sizeof(sy_service_artifacts_t), p_artifacts_put, p_artifacts_download, p_artifacts_read };
static const sy_service_crypto_t crypto_table = { sizeof(sy_service_crypto_t), p_sha256, p_hmac_sha256, p_ed25519_verify, p_jwt_hs256 };
static const sy_service_kv_t kv_table = { sizeof(sy_service_kv_t), p_kv_get, p_kv_put, p_kv_remove };
static const sy_service_process_t process_table = {
    sizeof(sy_service_process_t), p_process_start, p_process_status, p_process_wait, p_process_cancel, p_process_locate
};

static const struct {
    const char *id;
    const char *option;
    unsigned bit;
    const void *table;
} services[] = {
    { SY_SERVICE_LOG, "log", SYR_SVC_LOG, &log_table },
    { SY_SERVICE_CLOCK, "clock", SYR_SVC_CLOCK, &clock_table },
    { SY_SERVICE_HTTP, "http", SYR_SVC_HTTP, &http_table },
    { SY_SERVICE_SECRETS, "secrets", SYR_SVC_SECRETS, &secrets_table },
    { SY_SERVICE_ARTIFACTS, "artifacts", SYR_SVC_ARTIFACTS, &artifacts_table },
    { SY_SERVICE_CRYPTO, "crypto", SYR_SVC_CRYPTO, &crypto_table },
    { SY_SERVICE_KV, "kv", SYR_SVC_KV, &kv_table },
    { SY_SERVICE_PROCESS, "process", SYR_SVC_PROCESS, &process_table },
};

static const void *get_service(const sy_host_t *h, sy_str_t id) {
    (void)h;
    for (size_t i = 0; i < sizeof services / sizeof *services; i++) {
        size_t n = strlen(services[i].id);
        if (id.data && id.size == n && memcmp(id.data, services[i].id, n) == 0) {
            return (offered_services & (1u << services[i].bit)) ? services[i].table : NULL;
        }
    }
    return NULL;
}

/* ---- calls ---- */

typedef struct document_sink {
    buffer_t buffer;
    int truncated;
} document_sink_t;

static void document_write(const sy_sink_t *sink, const char *data, size_t size) {
    if (!sink || !sink->context || (!data && size > 0)) return;
    document_sink_t *d = sink->context;
    if (d->truncated || size == 0) return;
    if (size > max_document_bytes - d->buffer.size) {
        d->truncated = 1;
        return;
    }
    put_bytes_raw(&d->buffer, data, size);
}

typedef sy_status_t (*document_fn)(const sy_plugin_t *, const sy_call_t *, sy_str_t, const sy_sink_t *);

typedef struct job {
    struct job *next;
    uint64_t call_id;
    uint8_t op;
    sy_str_t extension;
    sy_str_t job_id;
    sy_str_t request;
    unsigned char *frame; /* owns the strings above */
} job_t;

static void run_job(job_t *job) {
    document_sink_t document = { { NULL, 0, 0 }, 0 };
    sy_sink_t sink = { sizeof(sy_sink_t), &document, document_write };
    runner_call_t context = { job->call_id };
    sy_call_t call = { sizeof(sy_call_t), &host, job->call_id, job->job_id, &context };
    sy_status_t status = SY_E_UNSUPPORTED;
    uint32_t flags = 0;
    document_fn fn = NULL;
    switch (job->op) {
    case SYR_OP_VALIDATE: fn = plugin->validate; break;
    case SYR_OP_SUBMIT: fn = plugin->submit; break;
    case SYR_OP_POLL: fn = plugin->poll; break;
    case SYR_OP_CANCEL: fn = plugin->cancel; break;
    case SYR_OP_HEALTH: fn = plugin->health; break;
    case SYR_OP_EXTENSION:
    case SYR_OP_HAS_EXTENSION: {
        const void *table = plugin->get_extension ? plugin->get_extension(plugin, job->extension) : NULL;
        if (!table) {
            flags |= SYR_RESULT_ABSENT;
        } else if (job->op == SYR_OP_HAS_EXTENSION) {
            status = SY_OK;
        } else if (*(const uint32_t *)table >= SY_EXTENSION_ESTIMATE_V1_0_SIZE) {
            /* Every v1 plugin extension is { uint32_t struct_size; fn }: the
             * function sits at the first pointer-aligned offset. A table from a
             * later minor may be larger; one smaller than v1.0's is unusable. */
            memcpy(&fn, (const unsigned char *)table + sizeof(void *), sizeof fn);
        }
        break;
    }
    default: break;
    }
    if (fn) status = fn(plugin, &call, job->request, &sink);
    if (document.truncated) flags |= SYR_RESULT_TRUNCATED;
    buffer_t b = { NULL, 0, 0 };
    frame_begin(&b, SYR_FRAME_RESULT, job->call_id);
    put_u32(&b, (uint32_t)status);
    put_u32(&b, flags);
    put_bytes(&b, document.truncated ? NULL : document.buffer.data, document.truncated ? 0 : document.buffer.size);
    send_frame(&b);
    free(b.data);
    free(document.buffer.data);
}

/* A pool that grows while every worker is busy: calls block (their services
 * wait on the host), so a call never waits for another to finish. */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_ready = PTHREAD_COND_INITIALIZER;
static job_t *queue_head, *queue_tail;
static int idle_workers, workers;
#define MAX_WORKERS 512

static void *worker(void *unused) {
    (void)unused;
    pthread_mutex_lock(&queue_lock);
    for (;;) {
        while (!queue_head) {
            idle_workers++;
            pthread_cond_wait(&queue_ready, &queue_lock);
            idle_workers--;
        }
        job_t *job = queue_head;
        queue_head = job->next;
        if (!queue_head) queue_tail = NULL;
        pthread_mutex_unlock(&queue_lock);
        run_job(job);
        free(job->frame);
        free(job);
        pthread_mutex_lock(&queue_lock);
    }
    return NULL;
}

static void enqueue(job_t *job) {
    pthread_mutex_lock(&queue_lock);
    if (queue_tail) queue_tail->next = job; else queue_head = job;
    queue_tail = job;
    int start = idle_workers == 0 && workers < MAX_WORKERS;
    if (start) workers++;
    pthread_cond_signal(&queue_ready);
    pthread_mutex_unlock(&queue_lock);
    if (start) {
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        pthread_t thread;
        if (pthread_create(&thread, &attributes, worker, NULL) != 0) {
            pthread_mutex_lock(&queue_lock);
            workers--;
            int none = workers == 0;
            pthread_mutex_unlock(&queue_lock);
            if (none) _exit(71); /* no thread can ever run it: the host sees the crash */
        }
        pthread_attr_destroy(&attributes);
    }
}

/* ---- startup ---- */

static pid_t parent;

/* The host may die without closing the channel for us (SIGKILL): a runner
 * whose plugin hangs in its entry must still go. */
static void *watch_parent(void *unused) {
    (void)unused;
    for (;;) {
        sleep(1);
        if (getppid() != parent) _exit(0);
    }
    return NULL;
}

static void close_inherited_descriptors(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, SYR_CHANNEL_FD + 1, ~0U, 0) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = SYR_CHANNEL_FD + 1; fd < max; fd++) (void)close(fd);
}

static void send_ready(int32_t status, const char *message, uint32_t mask_other_majors, const char *report) {
    buffer_t b = { NULL, 0, 0 };
    frame_begin(&b, SYR_FRAME_READY, 0);
    put_u32(&b, (uint32_t)status);
    put_bytes(&b, message, message ? strlen(message) : 0);
    uint32_t struct_size = 0, major = 0, minor = 0, functions = 0;
    sy_str_t descriptor = { NULL, 0 };
    if (plugin) {
        struct_size = plugin->struct_size;
        /* The frozen v1.0 size, not this runner's sizeof (version.h). */
        if (struct_size >= SY_PLUGIN_V1_0_SIZE) {
            major = plugin->abi.major;
            minor = plugin->abi.minor;
            functions = (plugin->validate ? SYR_FN_VALIDATE : 0) | (plugin->submit ? SYR_FN_SUBMIT : 0) |
                        (plugin->poll ? SYR_FN_POLL : 0) | (plugin->cancel ? SYR_FN_CANCEL : 0) |
                        (plugin->health ? SYR_FN_HEALTH : 0) | (plugin->get_extension ? SYR_FN_GET_EXTENSION : 0);
            descriptor = plugin->descriptor;
        }
    }
    put_u32(&b, struct_size);
    put_u32(&b, major);
    put_u32(&b, minor);
    put_u32(&b, functions);
    put_u32(&b, mask_other_majors);
    put_bytes(&b, descriptor.data, descriptor.data ? descriptor.size : 0);
    put_bytes(&b, report, strlen(report));
    send_frame(&b);
    free(b.data);
}

static uint64_t number(const char *text) { return strtoull(text, NULL, 10); }

int main(int argc, char **argv) {
    close_inherited_descriptors();
    signal(SIGPIPE, SIG_IGN);

    const char *library = NULL;
    const char *host_version = "";
    int probe = 0;
    runner_sandbox_config_t sandbox;
    memset(&sandbox, 0, sizeof sandbox);
    sandbox.enabled = 1;
    sandbox.memory_bytes = 4096ull << 20;
    sandbox.cpu_seconds = 3600;
    sandbox.file_bytes = 64ull << 20;
    sandbox.open_files = 256;
    sandbox.extra_tasks = 512;
    parent = getppid();
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--probe") == 0) { probe = 1; continue; }
        if (strcmp(arg, "--no-sandbox") == 0) { sandbox.enabled = 0; continue; }
        if (strcmp(arg, "--system-clock") == 0) { system_clock = 1; continue; }
        if (!value) { fprintf(stderr, "yard-plugin-runner: %s needs a value\n", arg); return 64; }
        i++;
        if (strcmp(arg, "--library") == 0) library = value;
        else if (strcmp(arg, "--scratch") == 0) sandbox.scratch = value;
        else if (strcmp(arg, "--read") == 0) { if (sandbox.read_only_count < 64) sandbox.read_only[sandbox.read_only_count++] = value; }
        else if (strcmp(arg, "--host-version") == 0) host_version = value;
        else if (strcmp(arg, "--parent") == 0) parent = (pid_t)number(value);
        else if (strcmp(arg, "--memory-mb") == 0) sandbox.memory_bytes = number(value) << 20;
        else if (strcmp(arg, "--cpu-seconds") == 0) sandbox.cpu_seconds = number(value);
        else if (strcmp(arg, "--file-mb") == 0) sandbox.file_bytes = number(value) << 20;
        else if (strcmp(arg, "--open-files") == 0) sandbox.open_files = number(value);
        else if (strcmp(arg, "--max-document-bytes") == 0) max_document_bytes = (size_t)number(value);
        else if (strcmp(arg, "--services") == 0) {
            for (size_t s = 0; s < sizeof services / sizeof *services; s++) {
                const char *found = strstr(value, services[s].option);
                size_t n = strlen(services[s].option);
                while (found && !((found == value || found[-1] == ',') && (found[n] == ',' || found[n] == '\0'))) found = strstr(found + 1, services[s].option);
                if (found) offered_services |= 1u << services[s].bit;
            }
        } else { fprintf(stderr, "yard-plugin-runner: unknown option %s\n", arg); return 64; }
    }
    if (getppid() != parent) return 0;
    if (!probe && !library) { fprintf(stderr, "yard-plugin-runner: --library or --probe is required\n"); return 64; }

    static char report[8192];
    runner_sandbox_apply(&sandbox, report, sizeof report);
    if (probe) {
        runner_sandbox_self_check(report, sizeof report);
        send_ready(SYR_LOAD_OK, "", 0, report);
        return 0;
    }

    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_parent, NULL) == 0) pthread_detach(watcher);

    static const char host_name[] = "switchyard";
    host.struct_size = sizeof(sy_host_t);
    host.abi = (sy_version_t)SY_VERSION_INIT;
    host.name = (sy_str_t){ host_name, sizeof host_name - 1 };
    host.version = (sy_str_t){ host_version, strlen(host_version) };
    host.host_data = NULL;
    host.get_service = get_service;

    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *reason = dlerror();
        send_ready(SYR_LOAD_DLOPEN_FAILED, reason ? reason : "unknown dlopen error", 0, report);
        return 0;
    }
    uint32_t other_majors = 0;
    for (int major = 2; major <= 9; major++) {
        char name[32];
        snprintf(name, sizeof name, "sy_plugin_entry_v%d", major);
        if (dlsym(handle, name)) other_majors |= 1u << major;
    }
    void *symbol = dlsym(handle, SY_PLUGIN_ENTRY_SYMBOL);
    if (!symbol) {
        send_ready(SYR_LOAD_NO_ENTRY, "", other_majors, report);
        return 0;
    }
    sy_plugin_entry_v1_fn entry;
    memcpy(&entry, &symbol, sizeof entry);
    plugin = entry(&host);
    if (!plugin) {
        send_ready(SYR_LOAD_ENTRY_NULL, "", other_majors, report);
        return 0;
    }
    send_ready(SYR_LOAD_OK, "", other_majors, report);

    for (;;) {
        unsigned char header[4];
        if (read_full(channel, header, 4) != 0) _exit(0);
        uint32_t size = (uint32_t)header[0] | (uint32_t)header[1] << 8 | (uint32_t)header[2] << 16 | (uint32_t)header[3] << 24;
        if (size < 9 || size > SYR_MAX_FRAME_BYTES) _exit(2);
        unsigned char *frame = malloc(size);
        if (!frame || read_full(channel, frame, size) != 0) _exit(frame ? 0 : 70);
        cursor_t c = { frame, frame + size, 1 };
        uint8_t kind = (uint8_t)get_le(&c, 1);
        uint64_t id = get_le(&c, 8);
        if (kind == SYR_FRAME_SERVICE_REPLY) {
            answer_service(id, &c, frame);
        } else if (kind == SYR_FRAME_CALL) {
            job_t *job = calloc(1, sizeof *job);
            if (!job) _exit(70);
            job->call_id = id;
            job->op = (uint8_t)get_le(&c, 1);
            job->extension = get_bytes(&c);
            job->job_id = get_bytes(&c);
            job->request = get_bytes(&c);
            job->frame = frame;
            if (!c.ok) _exit(2);
            enqueue(job);
        } else {
            _exit(2);
        }
    }
}
