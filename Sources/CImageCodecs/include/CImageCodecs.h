// Image codecs over libpng and libjpeg. The libraries report errors by longjmp; every setjmp/longjmp stays inside
// these C functions, so no jump ever crosses a Swift frame. Errors come back as a status and a message.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A decoded image: `pixels` (malloc'd, free with ic_free) is height×width×channels bytes, row-major HWC.
typedef struct {
    uint8_t *pixels;
    int width, height, channels;
} ic_image;

/// Returned by the decoders when the header declares more than `max_pixels` pixels: nothing was allocated for the
/// pixels, `out->pixels` is NULL and `out->width`, `out->height` hold the declared size.
#define IC_TOO_MANY_PIXELS (-2)

/// Decodes a PNG held in memory to 8-bit gray (1), RGB (3) or RGBA (4): 16-bit samples keep their high byte,
/// palettes become RGB, tRNS becomes alpha, gray with alpha becomes RGBA. A header declaring more than
/// `max_pixels` pixels (width × height) is refused before any pixel memory is allocated (IC_TOO_MANY_PIXELS).
/// Returns 0, or -1 with `error` filled.
int ic_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ic_image *out, char *error,
                  size_t error_size);

/// Decodes a JPEG held in memory to gray (1) or RGB (3). CMYK/YCCK files are refused, and so is a header declaring
/// more than `max_pixels` pixels (IC_TOO_MANY_PIXELS, before any pixel memory is allocated). 0, or -1 with `error`.
int ic_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ic_image *out, char *error,
                   size_t error_size);

/// Encodes 8-bit gray/RGB/RGBA pixels as a PNG in memory (`*out` malloc'd, free with ic_free). 0 or -1.
int ic_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                  char *error, size_t error_size);

void ic_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
