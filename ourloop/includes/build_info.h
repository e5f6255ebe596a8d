/* What `python -m ourloop` reports about the build: the compiler, the
 * flavour (release, debug, asan, ubsan, asan+ubsan) and how libuv is linked.
 * setup.py defines OURLOOP_DEBUG for the debug flavour, OURLOOP_UBSAN for
 * UndefinedBehaviorSanitizer (no predefined macro says so) and
 * OURLOOP_LIBUV_STATIC when it compiles the vendored libuv into the
 * extension.
 */
#ifndef OURLOOP_BUILD_INFO_H
#define OURLOOP_BUILD_INFO_H

#if defined(__clang__)
#  define OURLOOP_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#  define OURLOOP_COMPILER "gcc " __VERSION__
#else
#  define OURLOOP_COMPILER "unknown"
#endif

#if defined(__SANITIZE_ADDRESS__)
#  define OURLOOP_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define OURLOOP_ASAN 1
#  endif
#endif

#if defined(OURLOOP_DEBUG)
#  define OURLOOP_FLAVOUR "debug"
#elif defined(OURLOOP_ASAN) && defined(OURLOOP_UBSAN)
#  define OURLOOP_FLAVOUR "asan+ubsan"
#elif defined(OURLOOP_ASAN)
#  define OURLOOP_FLAVOUR "asan"
#elif defined(OURLOOP_UBSAN)
#  define OURLOOP_FLAVOUR "ubsan"
#else
#  define OURLOOP_FLAVOUR "release"
#endif

#if defined(OURLOOP_LIBUV_STATIC)
#  define OURLOOP_LIBUV_LINKAGE "vendored, static"
#else
#  define OURLOOP_LIBUV_LINKAGE "system, shared"
#endif

#endif
