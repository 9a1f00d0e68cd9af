/* flaky_segv.c - version "crash" of the flaky test plugin: its first call
 * segfaults (see flaky.h). */
#define FLAKY_VERSION "crash"
#define FLAKY_FAIL -1
#include "flaky.h"
