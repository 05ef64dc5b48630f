#ifndef SWITCHYARD_EXT_CLOCK_H
#define SWITCHYARD_EXT_CLOCK_H

#include "../host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.clock/1": the host's notion of time. Tests run a virtual
 * clock, so a plugin that signs tokens or checks expiry must read time here,
 * never from the system. */
#define SY_SERVICE_CLOCK "sy.clock/1"

typedef struct sy_service_clock {
    uint32_t struct_size;
    /* [call thread] Milliseconds since the Unix epoch (wall clock). */
    int64_t (*now_unix_ms)(const sy_call_t *call);
    /* [call thread] Monotonic nanoseconds, for measuring durations. */
    int64_t (*monotonic_ns)(const sy_call_t *call);
} sy_service_clock_t;
enum { SY_SERVICE_CLOCK_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_clock_t, monotonic_ns) };


#ifdef __cplusplus
}
#endif

#endif
