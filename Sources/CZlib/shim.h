// zlib (Debian: zlib1g-dev), found through pkg-config `zlib`.
#include <zlib.h>

// inflateInit2/deflateInit2 are function-like macros, which Swift cannot call; these wrap them.
static inline int czlib_inflate_init_gzip(z_stream *s) { return inflateInit2(s, 15 + 32); }
static inline int czlib_deflate_init_gzip(z_stream *s, int level) {
    return deflateInit2(s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
