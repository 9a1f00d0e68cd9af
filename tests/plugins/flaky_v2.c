/* flaky_v2.c - version "2" of the flaky test plugin: every fifth call
 * fails 500 (see flaky.h). */
#define FLAKY_VERSION "2"
#define FLAKY_FAIL 5
#include "flaky.h"
