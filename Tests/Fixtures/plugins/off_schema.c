/* Fixture: a plugin whose answers are JSON but not the ABI's documents: poll
 * reports progress 7 (of 0..1) and cancel an outcome and a charge the ABI does
 * not define. The conformance kit's documents.schema check must name both. */
#include "switchyard/switchyard.h"
#include <string.h>
static void emit(const sy_sink_t *o, const char *t) { o->write(o, t, strlen(t)); }
static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"diagnostics\":[]}"); return SY_OK; }
static sy_status_t submit(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"ref\":{\"n\":1},\"next_poll_after_ms\":1}"); return SY_OK; }
static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"state\":\"succeeded\",\"progress\":7,\"outputs\":{\"pong\":true}}"); return SY_OK; }
static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"outcome\":\"stopped\",\"charged\":\"maybe\"}"); return SY_OK; }
static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; emit(o, "{\"status\":\"ok\"}"); return SY_OK; }
static const void *ext(const sy_plugin_t *p, sy_str_t id) { (void)p; (void)id; return 0; }
#define D "{\"id\":\"fixture\",\"version\":\"1.0.0\",\"capabilities\":[\"debug.ping\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), SY_VERSION_INIT, { D, sizeof(D) - 1 }, 0, validate, submit, poll, cancel, health, ext };
SY_EXPORT const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g; }
