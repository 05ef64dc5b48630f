/* A complete Switchyard adapter in plain C99: proof that the PluginAPI is
 * language-neutral. Capability "debug.ping" finishes during submit (a local
 * engine), so poll and cancel report the finished job. It parses only what it
 * needs from the host's compact JSON, and treats anything else as invalid. */
#include "switchyard/switchyard.h"
#include <string.h>

#define DESCRIPTOR "{\"id\":\"c-minimal\",\"version\":\"1.0.0\",\"name\":\"Minimal C adapter\"," \
                   "\"capabilities\":[\"debug.ping\"],\"extensions\":[]}"

static const sy_host_t *g_host;

static void emit(const sy_sink_t *out, const char *text) {
    if (out && out->write) out->write(out, text, strlen(text));
}

static void log_line(const sy_call_t *call, const char *text) {
    const sy_service_log_t *log;
    sy_str_t id = { SY_SERVICE_LOG, sizeof(SY_SERVICE_LOG) - 1 };
    if (!g_host || !g_host->get_service) return;
    log = (const sy_service_log_t *)g_host->get_service(g_host, id);
    if (log && log->log) {
        sy_str_t message = { text, strlen(text) };
        log->log(call, SY_LOG_INFO, message);
    }
}

/* A request is a JSON object: first and last non-space bytes are braces. */
static int is_object(sy_str_t request) {
    size_t start = 0, end = request.size;
    if (!request.data) return 0;
    while (start < end && (request.data[start] == ' ' || request.data[start] == '\n')) start++;
    while (end > start && (request.data[end - 1] == ' ' || request.data[end - 1] == '\n')) end--;
    return end - start >= 2 && request.data[start] == '{' && request.data[end - 1] == '}';
}

static int has(sy_str_t request, const char *needle) {
    size_t n = strlen(needle), i;
    if (n > request.size) return 0;
    for (i = 0; i + n <= request.size; i++)
        if (memcmp(request.data + i, needle, n) == 0) return 1;
    return 0;
}

static int wants_ping(sy_str_t request) { return has(request, "\"capability\":\"debug.ping\""); }

static sy_status_t validate(const sy_plugin_t *plugin, const sy_call_t *call, sy_str_t request, const sy_sink_t *out) {
    (void)plugin; (void)call;
    if (!is_object(request)) return SY_E_INVALID_ARGUMENT;
    if (!wants_ping(request)) {
        emit(out, "{\"diagnostics\":[{\"code\":\"CONTRACT_MISMATCH\",\"message\":\"c-minimal offers only debug.ping.\","
                  "\"remediation\":\"Use capability debug.ping.\",\"field\":\"$.capability\",\"severity\":\"error\"}]}");
        return SY_OK;
    }
    if (!has(request, "\"inputs\":{}") && has(request, "\"inputs\":")) {
        emit(out, "{\"diagnostics\":[{\"code\":\"CONTRACT_MISMATCH\",\"message\":\"debug.ping takes no inputs.\","
                  "\"remediation\":\"Remove the inputs.\",\"field\":\"$.inputs\",\"severity\":\"error\"}]}");
        return SY_OK;
    }
    emit(out, "{\"diagnostics\":[]}");
    return SY_OK;
}

static sy_status_t submit(const sy_plugin_t *plugin, const sy_call_t *call, sy_str_t request, const sy_sink_t *out) {
    (void)plugin;
    if (!is_object(request)) return SY_E_INVALID_ARGUMENT;
    if (!wants_ping(request)) {
        emit(out, "{\"error\":{\"code\":\"CONTRACT_MISMATCH\",\"message\":\"c-minimal offers only debug.ping.\","
                  "\"remediation\":\"Use capability debug.ping.\",\"field\":\"$.capability\",\"retryable\":false,\"charged\":\"no\"}}");
        return SY_E_FAILED;
    }
    log_line(call, "c-minimal: pong");
    emit(out, "{\"result\":{\"state\":\"succeeded\",\"progress\":1,\"outputs\":{\"pong\":true}}}");
    return SY_OK;
}

static sy_status_t poll(const sy_plugin_t *plugin, const sy_call_t *call, sy_str_t request, const sy_sink_t *out) {
    (void)plugin; (void)call;
    if (!is_object(request)) return SY_E_INVALID_ARGUMENT;
    emit(out, "{\"state\":\"succeeded\",\"progress\":1,\"outputs\":{\"pong\":true}}");
    return SY_OK;
}

static sy_status_t cancel(const sy_plugin_t *plugin, const sy_call_t *call, sy_str_t request, const sy_sink_t *out) {
    (void)plugin; (void)call;
    if (!is_object(request)) return SY_E_INVALID_ARGUMENT;
    emit(out, "{\"outcome\":\"already_finished\",\"charged\":\"no\"}");
    return SY_OK;
}

static sy_status_t health(const sy_plugin_t *plugin, const sy_call_t *call, sy_str_t request, const sy_sink_t *out) {
    (void)plugin; (void)call; (void)request;
    emit(out, "{\"status\":\"ok\"}");
    return SY_OK;
}

static const void *get_extension(const sy_plugin_t *plugin, sy_str_t id) {
    (void)plugin; (void)id;
    return NULL;
}

static const sy_plugin_t g_plugin = {
    sizeof(sy_plugin_t),
    SY_VERSION_INIT,
    { DESCRIPTOR, sizeof(DESCRIPTOR) - 1 },
    NULL,
    validate, submit, poll, cancel, health, get_extension
};

__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) {
    if (!host || host->abi.major != SY_ABI_MAJOR || host->abi.minor < SY_ABI_MINOR) return NULL;
    g_host = host;
    return &g_plugin;
}
