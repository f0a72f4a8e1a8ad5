/* Preloaded into the local Slurm cluster's daemons by scripts/slurm-local.sh.
 *
 * slurmctld and slurmd have no setting for the address they listen on: they bind their ports to every
 * interface. A test cluster must not be reachable from the network, so this library turns a bind to the
 * wildcard address (IPv4 or IPv6) into a bind to the loopback address. Every other bind is unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_function)(int, const struct sockaddr*, socklen_t);

int bind(int fd, const struct sockaddr* address, socklen_t length) {
  static bind_function next_bind = NULL;
  if (!next_bind) next_bind = (bind_function)dlsym(RTLD_NEXT, "bind");
  if (address && address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in v4;
    memcpy(&v4, address, sizeof v4);
    if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
      v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return next_bind(fd, (const struct sockaddr*)&v4, sizeof v4);
    }
  } else if (address && address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 v6;
    memcpy(&v6, address, sizeof v6);
    if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof v6.sin6_addr) == 0) {
      v6.sin6_addr = in6addr_loopback;
      return next_bind(fd, (const struct sockaddr*)&v6, sizeof v6);
    }
  }
  return next_bind(fd, address, length);
}
