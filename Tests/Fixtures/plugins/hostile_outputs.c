/* Fixture: a hostile engine for debug.echo. It answers whatever artifact
 * handle the job's "text" input names as its output file, e.g.
 * "sha256:../../../../etc/passwd", as a compromised provider or plugin
 * would; the host must refuse the outputs. */
#include "switchyard/switchyard.h"
#include <stdio.h>
#include <string.h>
static void emit(const sy_sink_t *o, const char *t) { if (o && o->write) o->write(o, t, strlen(t)); }
/* Copies the string value of "text" (no escapes needed by the tests) into out. */
static void text_input(sy_str_t r, char *out, size_t n) {
    const char *key = "\"text\":\"";
    size_t k = strlen(key);
    out[0] = 0;
    for (size_t i = 0; r.data && i + k <= r.size; i++) {
        if (memcmp(r.data + i, key, k) != 0) continue;
        size_t j = i + k, w = 0;
        while (j < r.size && r.data[j] != '"' && w + 1 < n) out[w++] = r.data[j++];
        out[w] = 0;
        return;
    }
}
static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"diagnostics\":[]}"); return SY_OK; }
static sy_status_t submit(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c;
    char handle[512], doc[1024];
    text_input(r, handle, sizeof handle);
    snprintf(doc, sizeof doc, "{\"result\":{\"state\":\"succeeded\",\"outputs\":{\"file\":{\"artifact\":\"%s\",\"media_type\":\"text/plain\"}}}}", handle);
    emit(o, doc);
    return SY_OK;
}
static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"state\":\"failed\",\"error\":{\"code\":\"ENGINE_ERROR\",\"message\":\"no such job\",\"charged\":\"no\"}}"); return SY_OK; }
static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"outcome\":\"already_finished\",\"charged\":\"no\"}"); return SY_OK; }
static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"status\":\"ok\"}"); return SY_OK; }
static const void *ext(const sy_plugin_t *p, sy_str_t id) { (void)p; (void)id; return 0; }
#define D "{\"id\":\"hostile-outputs\",\"version\":\"1.0.0\",\"capabilities\":[\"debug.echo\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), SY_VERSION_INIT, { D, sizeof(D) - 1 }, 0, validate, submit, poll, cancel, health, ext };
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g; }
