#include "CFontRender.h"
#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_TRUETYPE_TABLES_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fr_font {
    FT_Library library;
    FT_Face face;
};

static void set_err(char *err, size_t len, const char *what, FT_Error code) {
    if (err && len) snprintf(err, len, "%s (FreeType error %d)", what, (int)code);
}

fr_font *fr_open(const char *path, char *err, size_t errlen) {
    fr_font *f = calloc(1, sizeof(fr_font));
    if (!f) { set_err(err, errlen, "out of memory", 0); return NULL; }
    FT_Error e = FT_Init_FreeType(&f->library);
    if (e) { set_err(err, errlen, "cannot initialise FreeType", e); free(f); return NULL; }
    e = FT_New_Face(f->library, path, 0, &f->face);
    if (e) {
        set_err(err, errlen, e == FT_Err_Unknown_File_Format ? "not a font file FreeType knows" : "cannot open the font", e);
        FT_Done_FreeType(f->library); free(f); return NULL;
    }
    return f;
}

void fr_close(fr_font *f) {
    if (!f) return;
    FT_Done_Face(f->face);
    FT_Done_FreeType(f->library);
    free(f);
}

uint32_t fr_glyph_index(fr_font *f, uint32_t cp) { return FT_Get_Char_Index(f->face, cp); }
int fr_fixed_sizes(fr_font *f) { return f->face->num_fixed_sizes; }
long fr_glyph_count(fr_font *f) { return f->face->num_glyphs; }

size_t fr_load_table(fr_font *f, uint32_t tag, uint8_t **out) {
    FT_ULong len = 0;
    *out = NULL;
    if (FT_Load_Sfnt_Table(f->face, tag, 0, NULL, &len) || len == 0) return 0;
    uint8_t *buf = malloc(len);
    if (!buf) return 0;
    if (FT_Load_Sfnt_Table(f->face, tag, 0, buf, &len)) { free(buf); return 0; }
    *out = buf;
    return len;
}

static uint8_t unpremultiply(int c, int a) {
    int v = (c * 255 + a / 2) / a;
    return (uint8_t)(v > 255 ? 255 : v);
}

int fr_render(fr_font *f, uint32_t glyph, int pixel_size, uint8_t **rgba, int *width, int *height, int *colored,
              char *err, size_t errlen) {
    FT_Error e;
    *rgba = NULL;
    if (f->face->num_fixed_sizes > 0 && !FT_IS_SCALABLE(f->face)) {
        int best = 0, bestDiff = 1 << 30;
        for (int i = 0; i < f->face->num_fixed_sizes; i++) {
            int d = abs((int)(f->face->available_sizes[i].y_ppem >> 6) - pixel_size);
            if (d < bestDiff) { bestDiff = d; best = i; }
        }
        e = FT_Select_Size(f->face, best);
        if (e) { set_err(err, errlen, "cannot select the bitmap strike", e); return 1; }
    } else {
        e = FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)pixel_size);
        if (e) { set_err(err, errlen, "cannot set the pixel size", e); return 1; }
    }
    e = FT_Load_Glyph(f->face, glyph, FT_LOAD_COLOR);
    if (e) { set_err(err, errlen, "cannot load the glyph", e); return 1; }
    if (f->face->glyph->format != FT_GLYPH_FORMAT_BITMAP) {
        e = FT_Render_Glyph(f->face->glyph, FT_RENDER_MODE_NORMAL);
        if (e) { set_err(err, errlen, "cannot render the glyph", e); return 1; }
    }
    FT_Bitmap *b = &f->face->glyph->bitmap;
    int w = (int)b->width, h = (int)b->rows;
    if (w <= 0 || h <= 0) { set_err(err, errlen, "the glyph is empty (no pixels)", 0); return 1; }
    uint8_t *out = malloc((size_t)w * h * 4);
    if (!out) { set_err(err, errlen, "out of memory", 0); return 1; }
    *colored = b->pixel_mode == FT_PIXEL_MODE_BGRA;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = b->buffer + (ptrdiff_t)y * b->pitch;
        for (int x = 0; x < w; x++) {
            uint8_t *o = out + ((size_t)y * w + x) * 4;
            switch (b->pixel_mode) {
            case FT_PIXEL_MODE_BGRA: {
                int a = row[4 * x + 3];
                int bl = row[4 * x], g = row[4 * x + 1], r = row[4 * x + 2];  // premultiplied
                o[0] = a ? unpremultiply(r, a) : 0;
                o[1] = a ? unpremultiply(g, a) : 0;
                o[2] = a ? unpremultiply(bl, a) : 0;
                o[3] = (uint8_t)a;
                break;
            }
            case FT_PIXEL_MODE_GRAY:
                o[0] = o[1] = o[2] = 0; o[3] = row[x];
                break;
            case FT_PIXEL_MODE_MONO:
                o[0] = o[1] = o[2] = 0; o[3] = (row[x >> 3] & (0x80 >> (x & 7))) ? 255 : 0;
                break;
            default:
                free(out);
                set_err(err, errlen, "unsupported bitmap pixel mode", b->pixel_mode);
                return 1;
            }
        }
    }
    *rgba = out; *width = w; *height = h;
    return 0;
}

void fr_free(void *p) { free(p); }
