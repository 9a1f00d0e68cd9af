/* flaky_v3.c - version "3" of the flaky test plugin (see flaky.h). */
#define FLAKY_VERSION "3"
#define FLAKY_FAIL 0
#include "flaky.h"
