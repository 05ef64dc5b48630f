/* Pins the v1 layout: if a change to the headers moves a field, this file no
 * longer compiles. Appending fields is allowed; extend the checks then. */
#include "switchyard/switchyard.h"
#include <stddef.h>

#define SY_STATIC_ASSERT(cond, name) typedef char sy_static_assert_##name[(cond) ? 1 : -1]

SY_STATIC_ASSERT(offsetof(sy_version_t, struct_size) == 0, version_size_first);
SY_STATIC_ASSERT(offsetof(sy_sink_t, struct_size) == 0, sink_size_first);
SY_STATIC_ASSERT(offsetof(sy_host_t, struct_size) == 0, host_size_first);
SY_STATIC_ASSERT(offsetof(sy_call_t, struct_size) == 0, call_size_first);
SY_STATIC_ASSERT(offsetof(sy_plugin_t, struct_size) == 0, plugin_size_first);
SY_STATIC_ASSERT(sizeof(void *) != 8 || offsetof(sy_plugin_t, validate) == 48, plugin_validate_offset);
SY_STATIC_ASSERT(sizeof(void *) != 8 || offsetof(sy_plugin_t, get_extension) == 88, plugin_get_extension_offset);
SY_STATIC_ASSERT(sizeof(void *) != 8 || offsetof(sy_host_t, get_service) == 64, host_get_service_offset);

