/* Fixture: an engine offering image.generate whose provider finishes the job
 * (it ran and billed) but answers its own JSON, {"prompt": ...}, instead of the
 * catalog's images: what an adapter that passes provider JSON on does. */
#include "switchyard/switchyard.h"
#include <string.h>
static void emit(const sy_sink_t *o, const char *t) { if (o && o->write) o->write(o, t, strlen(t)); }
static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"diagnostics\":[]}"); return SY_OK; }
static sy_status_t submit(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"ref\":{\"task\":1},\"next_poll_after_ms\":10}"); return SY_OK; }
static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r;
    emit(o, "{\"state\":\"succeeded\",\"progress\":1,\"outputs\":{\"prompt\":\"a lighthouse at dawn\",\"has_nsfw_concepts\":[false]}}");
    return SY_OK;
}
static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"outcome\":\"already_finished\",\"charged\":\"yes\"}"); return SY_OK; }
static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"status\":\"ok\"}"); return SY_OK; }
static const void *ext(const sy_plugin_t *p, sy_str_t id) { (void)p; (void)id; return 0; }
#define D "{\"id\":\"prompt-image\",\"version\":\"1.0.0\",\"capabilities\":[\"image.generate\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), SY_VERSION_INIT, { D, sizeof(D) - 1 }, 0, validate, submit, poll, cancel, health, ext };
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g; }
