#ifndef SWITCHYARD_VERSION_H
#define SWITCHYARD_VERSION_H

#include <stdint.h>

/* The ABI version this header describes.
 *
 * Compatibility rule (enforced by the host before it calls anything in the
 * plugin, from plugin.json, and again on the descriptor the entry returns):
 *   - the major must be equal (the major is also part of the entry symbol's
 *     name, so a v2 plugin simply has no sy_plugin_entry_v1);
 *   - the plugin's minor must be <= the host's minor: a host never loads a
 *     plugin that expects calls or services the host does not have.
 * Minor bumps only append struct fields, status codes and extension ids. */
#define SY_ABI_MAJOR 1
#define SY_ABI_MINOR 0
#define SY_ABI_PATCH 0

typedef struct sy_version {
    uint32_t struct_size; /* sizeof(sy_version_t) as the writer compiled it */
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
} sy_version_t;

#define SY_VERSION_INIT { sizeof(sy_version_t), SY_ABI_MAJOR, SY_ABI_MINOR, SY_ABI_PATCH }

/* True when a plugin built against `plugin` may be loaded by a host built
 * against `host`. */
#define SY_VERSION_IS_COMPATIBLE(host, plugin) \
    ((host).major == (plugin).major && (plugin).minor <= (host).minor)

#endif
