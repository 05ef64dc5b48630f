/* The runner protocol is a header (switchyard_runner_protocol.h) shared by the
 * host and yard-plugin-runner; this unit only pins what both sides assume. */
#include "switchyard_runner_protocol.h"

_Static_assert(SYR_MAX_FRAME_BYTES < 0xFFFFFFFFu, "frame sizes fit a u32");
