// A few FreeType calls for rendering colour emoji glyphs (CBDT bitmaps and COLRv0 layers), kept in C so that Swift
// sees plain functions and an opaque handle instead of FreeType's macros and structs.
#ifndef CFONTRENDER_H
#define CFONTRENDER_H
#include <stddef.h>
#include <stdint.h>

typedef struct fr_font fr_font;

/// Opens the font file `path` (face 0); NULL with a message in `err` on failure.
fr_font *fr_open(const char *path, char *err, size_t errlen);
void fr_close(fr_font *font);
/// The glyph index of a Unicode code point (0 = none).
uint32_t fr_glyph_index(fr_font *font, uint32_t codepoint);
/// Number of fixed bitmap sizes (CBDT strikes); 0 for scalable outline fonts.
int fr_fixed_sizes(fr_font *font);
/// The number of glyphs in the font.
long fr_glyph_count(fr_font *font);
/// Copies the sfnt table `tag` (e.g. 'GSUB'); returns its length, 0 when absent. Free `*out` with fr_free.
size_t fr_load_table(fr_font *font, uint32_t tag, uint8_t **out);
/// Renders `glyph` in colour at `pixel_size` (fixed-size fonts use their nearest strike). On success returns 0 and
/// an RGBA (straight alpha) buffer of `*width` x `*height`, to free with fr_free. Monochrome or gray glyphs come
/// back black with their coverage as alpha; `*colored` says whether the glyph had colour (BGRA) data.
int fr_render(fr_font *font, uint32_t glyph, int pixel_size, uint8_t **rgba, int *width, int *height,
              int *colored, char *err, size_t errlen);
void fr_free(void *p);
#endif
