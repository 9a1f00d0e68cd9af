/* swap_v2.c - version "2" of the swap test plugin (see swap.h). */
#define SWAP_VERSION "2"
#include "swap.h"
