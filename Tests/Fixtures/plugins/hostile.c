/* Fixture: a hostile plugin for the containment suite (HostilePluginTests).
 *
 * It offers debug.hostile (or -DHOSTILE_CAPABILITY; its id: -DHOSTILE_ID) and behaves like a well-mannered echo engine unless
 * told to misbehave:
 *   - at load, by -DHOSTILE_ENTRY="fault" (and -DHOSTILE_HEALTH="fault" for health)
 *   - per job, by inputs {"fault_validate"|"fault_submit"|"fault_poll": "fault"}
 *     (submit copies fault_poll into the ref, so poll finds it)
 *   - per webhook delivery, by the header x-fault: fault
 *
 * Faults that end or stall the process: abort, segv, exit, hang, busy, huge
 * (a 100 MiB document), malformed (not JSON), forkbomb.
 * Probes that report what they could do, in the job's outputs (or, for the
 * entry, in health's message): connect (TCP to 127.0.0.1:<inputs.port>),
 * fopen (<inputs.path>), getaddrinfo (localhost), fork, alloc (6 GiB), env
 * (the names of its environment variables).
 * A sandboxed runner must refuse every probe. */
#define _GNU_SOURCE
#include "switchyard/switchyard.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef HOSTILE_ENTRY
#define HOSTILE_ENTRY "none"
#endif
#ifndef HOSTILE_HEALTH
#define HOSTILE_HEALTH "none"
#endif
#ifndef HOSTILE_PORT
#define HOSTILE_PORT 9
#endif
#ifndef HOSTILE_ID
#define HOSTILE_ID "hostile"
#endif
#ifndef HOSTILE_CAPABILITY
#define HOSTILE_CAPABILITY "debug.hostile"
#endif
#ifndef HOSTILE_PATH
#define HOSTILE_PATH "/etc/passwd"
#endif

static void emit(const sy_sink_t *o, const char *t) { if (o && o->write) o->write(o, t, strlen(t)); }

/* The value of "name":"value" in a JSON text (no escapes needed here). */
static int member(sy_str_t json, const char *name, char *value, size_t size) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    size_t n = strlen(key);
    for (size_t i = 0; json.data && i + n <= json.size; i++) {
        if (memcmp(json.data + i, key, n) != 0) continue;
        size_t j = i + n, k = 0;
        while (j < json.size && json.data[j] != '"' && k + 1 < size) value[k++] = json.data[j++];
        value[k] = 0;
        return 1;
    }
    value[0] = 0;
    return 0;
}

static long number(sy_str_t json, const char *name, long fallback) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    size_t n = strlen(key);
    for (size_t i = 0; json.data && i + n <= json.size; i++) {
        if (memcmp(json.data + i, key, n) == 0) return strtol(json.data + i + n, NULL, 10);
    }
    return fallback;
}

/* ---- probes: what a plugin could do on its own ---- */

static void probe(const char *what, long port, const char *path, char *out, size_t size) {
    if (strcmp(what, "connect") == 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { snprintf(out, size, "refused: socket: %s", strerror(errno)); return; }
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)port);
        a.sin_addr.s_addr = htonl(0x7f000001);
        int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
        if (rc == 0) snprintf(out, size, "connected");
        else snprintf(out, size, "refused: connect: %s", strerror(errno));
        close(fd);
    } else if (strcmp(what, "fopen") == 0) {
        FILE *f = fopen(path, "r");
        if (!f) { snprintf(out, size, "refused: fopen: %s", strerror(errno)); return; }
        char line[64] = "";
        size_t got = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        snprintf(out, size, "read %zu bytes", got);
    } else if (strcmp(what, "getaddrinfo") == 0) {
        struct addrinfo *result = NULL;
        int rc = getaddrinfo("localhost", "80", NULL, &result);
        if (rc == 0) { snprintf(out, size, "resolved"); freeaddrinfo(result); }
        else snprintf(out, size, "refused: getaddrinfo: %s", gai_strerror(rc));
    } else if (strcmp(what, "fork") == 0) {
        int started = 0, error = 0;
        for (int i = 0; i < 8; i++) {
            pid_t child = fork();
            if (child == 0) _exit(0);
            if (child > 0) { started++; waitpid(child, NULL, 0); } else error = errno;
        }
        if (started) snprintf(out, size, "forked %d", started);
        else snprintf(out, size, "refused: fork: %s", strerror(error));
    } else if (strcmp(what, "env") == 0) {
        extern char **environ;
        size_t used = 0;
        out[0] = 0;
        for (char **e = environ; e && *e && used + 2 < size; e++) {
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
            if (used + n + 2 >= size) break;
            if (used) out[used++] = ',';
            memcpy(out + used, *e, n);
            used += n;
            out[used] = 0;
        }
    } else if (strcmp(what, "alloc") == 0) {
        size_t bytes = (size_t)6 << 30;
        char *p = malloc(bytes);
        if (!p) { snprintf(out, size, "refused: malloc of 6 GiB failed"); return; }
        free(p);
        snprintf(out, size, "allocated 6 GiB");
    } else {
        snprintf(out, size, "unknown probe %s", what);
    }
}

/* ---- faults: the host must survive each ---- */

static volatile unsigned long spin;

static int fault(const char *what, const sy_sink_t *out) {
    if (strcmp(what, "abort") == 0) abort();
    if (strcmp(what, "segv") == 0) { volatile int *nowhere = 0; *nowhere = 1; }
    if (strcmp(what, "exit") == 0) exit(3);
    if (strcmp(what, "hang") == 0) { for (;;) pause(); }
    if (strcmp(what, "busy") == 0) { for (;;) spin++; }
    if (strcmp(what, "forkbomb") == 0) {
        /* Bounded, so that a broken sandbox cannot take the machine down. */
        for (int i = 0; i < 64; i++) {
            pid_t child = fork();
            if (child == 0) { sleep(1); _exit(0); }
        }
        for (;;) spin++;
    }
    if (strcmp(what, "huge") == 0) {
        static char chunk[1 << 20];
        memset(chunk, 'x', sizeof chunk);
        emit(out, "{\"state\":\"succeeded\",\"outputs\":{\"text\":\"");
        for (int i = 0; i < 100 && out && out->write; i++) out->write(out, chunk, sizeof chunk);
        emit(out, "\"}}");
        return 1;
    }
    if (strcmp(what, "malformed") == 0) {
        emit(out, "{\"state\":\"succeeded\",\"outputs\":{not json");
        return 1;
    }
    return 0;
}

/* ---- the entry's own attempts, reported by health ---- */

static char entry_report[256] = "";

static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c;
    char what[32];
    if (member(r, "fault_validate", what, sizeof what) && fault(what, o)) return SY_OK;
    emit(o, "{\"diagnostics\":[]}");
    return SY_OK;
}

static sy_status_t submit(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c;
    char what[32], poll_fault[32], path[256], report[256], doc[1024];
    if (member(r, "fault_submit", what, sizeof what) && fault(what, o)) return SY_OK;
    if (member(r, "probe", what, sizeof what)) {
        if (!member(r, "path", path, sizeof path)) snprintf(path, sizeof path, "%s", HOSTILE_PATH);
        probe(what, number(r, "port", HOSTILE_PORT), path, report, sizeof report);
        snprintf(doc, sizeof doc, "{\"result\":{\"state\":\"succeeded\",\"outputs\":{\"probe\":\"%s\",\"outcome\":\"%s\"}}}", what, report);
        emit(o, doc);
        return SY_OK;
    }
    member(r, "fault_poll", poll_fault, sizeof poll_fault);
    snprintf(doc, sizeof doc, "{\"ref\":{\"poll_fault\":\"%s\"},\"next_poll_after_ms\":10}", poll_fault);
    emit(o, doc);
    return SY_OK;
}

static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c;
    char what[32];
    if (member(r, "poll_fault", what, sizeof what) && fault(what, o)) return SY_OK;
    emit(o, "{\"state\":\"succeeded\",\"outputs\":{\"text\":\"survived\"}}");
    return SY_OK;
}

static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r;
    emit(o, "{\"outcome\":\"already_finished\",\"charged\":\"no\"}");
    return SY_OK;
}

static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r;
    if (fault(HOSTILE_HEALTH, o)) return SY_OK;
    char doc[512];
    snprintf(doc, sizeof doc, "{\"status\":\"ok\",\"message\":\"entry: %s\"}", entry_report[0] ? entry_report : "nothing tried");
    emit(o, doc);
    return SY_OK;
}

static sy_status_t webhook(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c;
    char what[32];
    if (member(r, "x-fault", what, sizeof what) && fault(what, o)) return SY_OK;
    emit(o, "{\"error\":{\"code\":\"WEBHOOK_SIGNATURE_INVALID\",\"message\":\"unsigned delivery\",\"remediation\":\"sign it\",\"retryable\":false,\"charged\":\"no\"}}");
    return SY_E_DENIED;
}

static const sy_extension_webhook_t webhook_table = { sizeof(sy_extension_webhook_t), webhook };

static const void *ext(const sy_plugin_t *p, sy_str_t id) {
    (void)p;
    if (id.size == strlen(SY_EXTENSION_WEBHOOK) && memcmp(id.data, SY_EXTENSION_WEBHOOK, id.size) == 0) return &webhook_table;
    return 0;
}

#define D "{\"id\":\"" HOSTILE_ID "\",\"version\":\"1.0.0\",\"capabilities\":[\"" HOSTILE_CAPABILITY "\"],\"extensions\":[\"sy.webhook/1\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), SY_VERSION_INIT, { D, sizeof(D) - 1 }, 0, validate, submit, poll, cancel, health, ext };

__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) {
    (void)host;
    const char *what = HOSTILE_ENTRY;
    if (strcmp(what, "connect") == 0 || strcmp(what, "fopen") == 0 || strcmp(what, "getaddrinfo") == 0 ||
        strcmp(what, "fork") == 0 || strcmp(what, "alloc") == 0) {
        probe(what, HOSTILE_PORT, HOSTILE_PATH, entry_report, sizeof entry_report);
    } else {
        static const sy_sink_t nowhere = { sizeof(sy_sink_t), 0, 0 };
        fault(what, &nowhere);
    }
    return &g;
}
