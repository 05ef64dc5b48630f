#ifndef SWITCHYARD_EXT_CLOCK_H
#define SWITCHYARD_EXT_CLOCK_H

#include "../host.h"

/* Host service "sy.clock/1": the host's notion of time. Tests run a virtual
 * clock, so a plugin that signs tokens or checks expiry must read time here,
 * never from the system. */
#define SY_SERVICE_CLOCK "sy.clock/1"

typedef struct sy_service_clock {
    uint32_t struct_size;
    /* [any thread] Milliseconds since the Unix epoch (wall clock). */
    int64_t (*now_unix_ms)(const sy_call_t *call);
    /* [any thread] Monotonic nanoseconds, for measuring durations. */
    int64_t (*monotonic_ns)(const sy_call_t *call);
} sy_service_clock_t;

#endif
