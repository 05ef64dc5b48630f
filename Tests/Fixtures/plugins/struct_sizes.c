/* Fixture: a plugin whose structs are not v1.0's size.
 *   default           sy_plugin_t and the sy.estimate/1 table carry fields a
 *                     later minor appended: a host must load it and ignore
 *                     them (it compares struct_size with the frozen v1.0 size,
 *                     never with its own sizeof);
 *   -DSMALLER_PLUGIN  sy_plugin_t's struct_size stops before get_extension:
 *                     smaller than v1.0, so PLUGIN_CORRUPT;
 *   -DSMALLER_TABLE   the sy.estimate/1 table is smaller than v1.0's: the host
 *                     must not call through it. */
#include "switchyard/switchyard.h"
#include <string.h>

#define D "{\"id\":\"fixture\",\"version\":\"1.0.0\",\"capabilities\":[\"debug.ping\"],\"extensions\":[\"sy.estimate/1\"]}"

typedef struct {
    sy_plugin_t v1_0;
    void (*appended_function)(void);
    uint64_t appended_flags;
} later_plugin_t;

typedef struct {
    sy_extension_estimate_t v1_0;
    const void *appended_table;
} later_estimate_t;

static void emit(const sy_sink_t *out, const char *text) { out->write(out, text, strlen(text)); }

static sy_status_t validate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"diagnostics\":[]}"); return SY_OK;
}
static sy_status_t finished(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"result\":{\"state\":\"succeeded\",\"progress\":1,\"outputs\":{\"pong\":true}}}"); return SY_OK;
}
static sy_status_t poll(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"state\":\"succeeded\",\"progress\":1,\"outputs\":{\"pong\":true}}"); return SY_OK;
}
static sy_status_t cancel(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"outcome\":\"already_finished\",\"charged\":\"no\"}"); return SY_OK;
}
static sy_status_t health(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"status\":\"ok\"}"); return SY_OK;
}
static sy_status_t estimate(const sy_plugin_t *p, const sy_call_t *c, sy_str_t r, const sy_sink_t *o) {
    (void)p; (void)c; (void)r; emit(o, "{\"amount_minor\":7,\"currency\":\"USD\",\"basis\":\"fixture\"}"); return SY_OK;
}

#ifdef SMALLER_TABLE
#define TABLE_SIZE (SY_EXTENSION_ESTIMATE_V1_0_SIZE - sizeof(void *))
#else
#define TABLE_SIZE sizeof(later_estimate_t)
#endif
static const later_estimate_t estimate_table = { { TABLE_SIZE, estimate }, 0 };

static const void *get_extension(const sy_plugin_t *p, sy_str_t id) {
    (void)p;
    if (id.size == sizeof(SY_EXTENSION_ESTIMATE) - 1 && memcmp(id.data, SY_EXTENSION_ESTIMATE, id.size) == 0) return &estimate_table;
    return 0;
}

#ifdef SMALLER_PLUGIN
#define PLUGIN_SIZE (SY_PLUGIN_V1_0_SIZE - sizeof(void *))
#else
#define PLUGIN_SIZE sizeof(later_plugin_t)
#endif
static const later_plugin_t g = {
    { PLUGIN_SIZE, { sizeof(sy_version_t), 1, 0, 0 }, { D, sizeof(D) - 1 }, 0, validate, finished, poll, cancel, health, get_extension },
    0, 0
};

SY_EXPORT const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; return &g.v1_0; }
