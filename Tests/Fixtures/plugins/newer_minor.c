/* Fixture: a plugin whose descriptor claims ABI 1.99 (newer than any v1 host). */
#include "switchyard/switchyard.h"
static sy_status_t op(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) { (void)p; (void)c; (void)r; (void)o; return SY_OK; }
static const void *ext(const sy_plugin_t *p, sy_str_t id) { (void)p; (void)id; return 0; }
#define D "{\"id\":\"fixture\",\"version\":\"1.0.0\",\"capabilities\":[\"debug.ping\"]}"
static const sy_plugin_t g = { sizeof(sy_plugin_t), { sizeof(sy_version_t), 1, 99, 0 }, { D, sizeof(D) - 1 }, 0, op, op, op, op, op, ext };
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g; }
