/*
 * version.h - the version of cmdhost's programs, the one place it is
 * written (cmdhostd -V, host.health, host.list, cmdhost_build_info).
 */
#ifndef CMDHOST_VERSION_H
#define CMDHOST_VERSION_H

#define CMDHOST_VERSION "0.1.0"

#endif /* CMDHOST_VERSION_H */
