/* libhwsock version. The library's ABI is versioned by its linker script
 * (lib/hwsock.map); this header versions the API a program was compiled with. */
#ifndef HWSOCK_VERSION_H
#define HWSOCK_VERSION_H

#define HWSOCK_VERSION_MAJOR 0
#define HWSOCK_VERSION_MINOR 1
#define HWSOCK_VERSION_PATCH 0

#define HWSOCK_VERSION_HEX                                                    \
  ((HWSOCK_VERSION_MAJOR << 16) | (HWSOCK_VERSION_MINOR << 8) |               \
   HWSOCK_VERSION_PATCH)

/* True when the headers in use are at least version major.minor.micro. */
#define HWSOCK_CHECK_VERSION(major, minor, micro)                             \
  (HWSOCK_VERSION_MAJOR > (major) ||                                          \
   (HWSOCK_VERSION_MAJOR == (major) && HWSOCK_VERSION_MINOR > (minor)) ||     \
   (HWSOCK_VERSION_MAJOR == (major) && HWSOCK_VERSION_MINOR == (minor) &&     \
    HWSOCK_VERSION_PATCH >= (micro)))

#endif
