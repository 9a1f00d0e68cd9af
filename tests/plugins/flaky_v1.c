/* flaky_v1.c - version "1" of the flaky test plugin (see flaky.h). */
#define FLAKY_VERSION "1"
#define FLAKY_FAIL 0
#include "flaky.h"
