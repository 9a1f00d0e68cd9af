/* swap_v1.c - version "1" of the swap test plugin (see swap.h). */
#define SWAP_VERSION "1"
#include "swap.h"
