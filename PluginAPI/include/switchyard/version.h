#ifndef SWITCHYARD_VERSION_H
#define SWITCHYARD_VERSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes.
 *
 * Compatibility rule (enforced by the host before it calls anything in the
 * plugin, from plugin.json, and again on the descriptor the entry returns):
 *   - the major must be equal (the major is also part of the entry symbol's
 *     name, so a v2 plugin simply has no sy_plugin_entry_v1);
 *   - the plugin's minor must be <= the host's minor: a host never loads a
 *     plugin that expects calls or services the host does not have.
 * Minor bumps only append struct fields, status codes, service ids and
 * extension ids; every such addition bumps the minor (ADR 0017), so that a
 * plugin that relies on it declares that minor and an older host refuses it
 * before calling anything instead of failing later.
 *
 * History:
 *   1.0  the job model (plugin.h), services sy.log/1, sy.clock/1, sy.http/1,
 *        sy.secrets/1, sy.artifacts/1, sy.crypto/1, sy.kv/1, sy.process/1;
 *        extensions sy.estimate/1, sy.balance/1, sy.webhook/1,
 *        sy.reconcile/1. (sy.process/1 shipped inside 1.0, before this rule;
 *        a plugin on a host without it gets NULL from get_service.)
 *   The next addition is 1.1. A plugin built against 1.0 keeps loading on
 *   every 1.x host: hosts compare struct_size with the frozen v1.0 sizes
 *   below, never with their own sizeof. */
#define SY_ABI_MAJOR 1
#define SY_ABI_MINOR 0
#define SY_ABI_PATCH 0

/* The end of `field` in `type`: the smallest struct_size that covers it.
 * A reader of a struct another party wrote (host or plugin):
 *   - refuses it when struct_size < the frozen v1.0 size of its type
 *     (SY_<TYPE>_V1_0_SIZE, defined beside each struct): it is corrupt;
 *   - accepts any larger struct_size: the writer was built against a later
 *     minor that appended fields, which this reader ignores;
 *   - reads a field appended after 1.0 only when SY_HAS_FIELD says the
 *     writer's struct_size covers it.
 * Structs embedded by value (sy_version_t in sy_plugin_t and sy_host_t,
 * sy_str_t everywhere) never grow: growing them would move the fields after
 * them. */
#define SY_SIZE_THROUGH(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define SY_HAS_FIELD(ptr, type, field) ((size_t)(ptr)->struct_size >= SY_SIZE_THROUGH(type, field))

typedef struct sy_version {
    uint32_t struct_size; /* sizeof(sy_version_t) as the writer compiled it */
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
} sy_version_t;

enum { SY_VERSION_V1_0_SIZE = SY_SIZE_THROUGH(sy_version_t, patch) };

#define SY_VERSION_INIT { sizeof(sy_version_t), SY_ABI_MAJOR, SY_ABI_MINOR, SY_ABI_PATCH }

/* True when a plugin built against `plugin` may be loaded by a host built
 * against `host`. */
#define SY_VERSION_IS_COMPATIBLE(host, plugin) \
    ((host).major == (plugin).major && (plugin).minor <= (host).minor)

#ifdef __cplusplus
}
#endif

#endif
