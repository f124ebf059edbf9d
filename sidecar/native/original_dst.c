/*
 * meshlet_original_dst: one function, originalDst(fd), that asks the kernel where a TCP connection
 * redirected by iptables (nat REDIRECT) was headed: getsockopt(SO_ORIGINAL_DST) at SOL_IP for IPv4
 * (including IPv4-mapped peers on a dual-stack socket), getsockopt(IP6T_SO_ORIGINAL_DST) at
 * SOL_IPV6 for IPv6. Returns { host, port }, or null when conntrack knows no such connection
 * (ENOENT: not redirected) or the kernel has no conntrack for the family (ENOPROTOOPT). Any other
 * failure throws an Error whose `code` is the errno name.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#endif

static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case ENOTCONN: return "ENOTCONN";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *call, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s failed: %s", call, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

static napi_value make_result(napi_env env, const char *host, unsigned port) {
  napi_value result, host_value, port_value;
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &host_value) != napi_ok) return NULL;
  if (napi_create_uint32(env, port, &port_value) != napi_ok) return NULL;
  if (napi_set_named_property(env, result, "host", host_value) != napi_ok) return NULL;
  if (napi_set_named_property(env, result, "port", port_value) != napi_ok) return NULL;
  return result;
}

static napi_value null_value(napi_env env) {
  napi_value value;
  napi_get_null(env, &value);
  return value;
}

static int is_not_redirected(int err) {
  return err == ENOENT || err == ENOPROTOOPT;
}

static napi_value original_dst_ipv4(napi_env env, int fd) {
  struct sockaddr_in dst;
  socklen_t len = sizeof dst;
  char host[INET_ADDRSTRLEN];
  memset(&dst, 0, sizeof dst);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
    int err = errno;
    return is_not_redirected(err) ? null_value(env) : throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", err);
  }
  if (inet_ntop(AF_INET, &dst.sin_addr, host, sizeof host) == NULL) return throw_errno(env, "inet_ntop", errno);
  return make_result(env, host, ntohs(dst.sin_port));
}

static napi_value original_dst_ipv6(napi_env env, int fd) {
  struct sockaddr_in6 dst;
  socklen_t len = sizeof dst;
  char host[INET6_ADDRSTRLEN];
  memset(&dst, 0, sizeof dst);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
    int err = errno;
    return is_not_redirected(err) ? null_value(env) : throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", err);
  }
  if (inet_ntop(AF_INET6, &dst.sin6_addr, host, sizeof host) == NULL) return throw_errno(env, "inet_ntop", errno);
  return make_result(env, host, ntohs(dst.sin6_port));
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "originalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) return throw_errno(env, "getsockname", errno);
  if (local.ss_family == AF_INET) return original_dst_ipv4(env, fd);
  if (local.ss_family == AF_INET6) {
    const struct sockaddr_in6 *local6 = (const struct sockaddr_in6 *)&local;
    return IN6_IS_ADDR_V4MAPPED(&local6->sin6_addr) ? original_dst_ipv4(env, fd) : original_dst_ipv6(env, fd);
  }
  return throw_errno(env, "originalDst", EAFNOSUPPORT);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "originalDst", fn) != napi_ok) return NULL;
  return exports;
}
