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


/* The frozen v1.0 sizes on LP64 (Linux x86_64/arm64, macOS): a reader compares
 * struct_size with these, never with its own sizeof, so a later minor that
 * appends fields keeps loading v1.0 plugins. */
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_PLUGIN_V1_0_SIZE == 96, plugin_v1_0_size);
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_HOST_V1_0_SIZE == 72, host_v1_0_size);
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_CALL_V1_0_SIZE == 48, call_v1_0_size);
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_SINK_V1_0_SIZE == 24, sink_v1_0_size);
SY_STATIC_ASSERT(SY_VERSION_V1_0_SIZE == 16, version_v1_0_size);
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_EXTENSION_ESTIMATE_V1_0_SIZE == 16, estimate_v1_0_size);
SY_STATIC_ASSERT(sizeof(void *) != 8 || SY_SERVICE_PROCESS_V1_0_SIZE == 48, process_v1_0_size);
/* Every v1 plugin extension table is { struct_size; fn }: readers rely on one size. */
SY_STATIC_ASSERT(SY_EXTENSION_BALANCE_V1_0_SIZE == SY_EXTENSION_ESTIMATE_V1_0_SIZE, balance_like_estimate);
SY_STATIC_ASSERT(SY_EXTENSION_WEBHOOK_V1_0_SIZE == SY_EXTENSION_ESTIMATE_V1_0_SIZE, webhook_like_estimate);
SY_STATIC_ASSERT(SY_EXTENSION_RECONCILE_V1_0_SIZE == SY_EXTENSION_ESTIMATE_V1_0_SIZE, reconcile_like_estimate);
