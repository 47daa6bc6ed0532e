#include "CImageCodecs.h"
#include <png.h>
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ic_free(void *p) { free(p); }

static void set_error(char *error, size_t n, const char *msg) {
    if (error && n) { snprintf(error, n, "%s", msg); }
}

/* ---------- PNG decode (classic API, reading from memory) ---------- */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char *error;
    size_t error_size;
} png_src;

static void png_err(png_structp png, png_const_charp msg) {
    png_src *s = (png_src *)png_get_error_ptr(png);
    set_error(s->error, s->error_size, msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    png_src *s = (png_src *)png_get_io_ptr(png);
    if (s->size - s->pos < n) { png_error(png, "the file is truncated (unexpected end of data)"); }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

int ic_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ic_image *out, char *error,
                  size_t error_size) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        set_error(error, error_size, "not a PNG file (bad signature)");
        return -1;
    }
    png_src src = {data, size, 0, error, error_size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err, png_warn);
    if (!png) { set_error(error, error_size, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); set_error(error, error_size, "out of memory"); return -1; }
    /* volatile: these change after setjmp and are read after a longjmp. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 1 << 15, 1 << 15);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        /* Refused from the IHDR alone: a small file can declare gigabytes of pixels (a compressed bomb). */
        png_destroy_read_struct(&png, &info, NULL);
        out->width = (int)w;
        out->height = (int)h;
        set_error(error, error_size, "too many pixels");
        return IC_TOO_MANY_PIXELS;
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth < 8 && color != PNG_COLOR_TYPE_GRAY) png_set_packing(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    int has_alpha = (color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
    int is_gray = !(color & PNG_COLOR_MASK_COLOR) && color != PNG_COLOR_TYPE_PALETTE;
    if (is_gray && has_alpha) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || (channels != 1 && channels != 3 && channels != 4)) {
        png_error(png, "unsupported PNG layout after conversion");
    }
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * channels) png_error(png, "unexpected PNG row size");
    pixels = (uint8_t *)malloc((size_t)h * rowbytes);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->pixels = pixels;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    return 0;
}

/* ---------- JPEG decode ---------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *error;
    size_t error_size;
} jpeg_err_mgr;

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    jpeg_err_mgr *e = (jpeg_err_mgr *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    set_error(e->error, e->error_size, buf);
    longjmp(e->jump, 1);
}

static void jpeg_emit_cb(j_common_ptr cinfo, int level) {
    /* Warnings (level < 0) such as "premature end of data" are errors here: a truncated file must not decode to
       grey padding silently. */
    if (level < 0) {
        jpeg_err_mgr *e = (jpeg_err_mgr *)cinfo->err;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            set_error(e->error, e->error_size, "the file is truncated (premature end of JPEG data)");
            longjmp(e->jump, 1);
        }
    }
}

int ic_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ic_image *out, char *error,
                   size_t error_size) {
    memset(out, 0, sizeof *out);
    struct jpeg_decompress_struct cinfo;
    jpeg_err_mgr err;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_error_exit_cb;
    err.pub.emit_message = jpeg_emit_cb;
    err.error = error;
    err.error_size = error_size;
    uint8_t *volatile pixels = NULL;
    if (setjmp(err.jump)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if ((uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height > max_pixels) {
        /* Refused from the SOF header, before jpeg_start_decompress allocates anything for the pixels. */
        out->width = (int)cinfo.image_width;
        out->height = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        set_error(error, error_size, "too many pixels");
        return IC_TOO_MANY_PIXELS;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        set_error(error, error_size, "CMYK/YCCK JPEG files are not supported");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, c = cinfo.output_components;
    if (w <= 0 || h <= 0) {
        set_error(error, error_size, "zero-size image");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    size_t rowbytes = (size_t)w * c;
    pixels = (uint8_t *)malloc((size_t)h * rowbytes);
    if (!pixels) { set_error(error, error_size, "out of memory"); jpeg_destroy_decompress(&cinfo); return -1; }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * rowbytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    out->pixels = pixels;
    out->width = w;
    out->height = h;
    out->channels = c;
    return 0;
}

/* ---------- PNG encode (simplified API: errors come back in image.message, no longjmp) ---------- */

int ic_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out, size_t *out_size,
                  char *error, size_t error_size) {
    *out = NULL;
    *out_size = 0;
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    /* Small images (every dataset image) are compressed once, into a worst-case buffer; for larger ones the exact
       size is asked first (which compresses the whole image once more) so the buffer is no larger than needed. */
    png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
    if (size > (png_alloc_size_t)1 << 22 && !png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        set_error(error, error_size, image.message);
        png_image_free(&image);
        return -1;
    }
    uint8_t *buf = (uint8_t *)malloc(size);
    if (!buf) { set_error(error, error_size, "out of memory"); return -1; }
    if (!png_image_write_to_memory(&image, buf, &size, 0, pixels, 0, NULL)) {
        set_error(error, error_size, image.message);
        png_image_free(&image);
        free(buf);
        return -1;
    }
    *out = buf;
    *out_size = size;
    return 0;
}
