//! The one SVG writer the plugins' pictures use: escaping, the colour scale with its
//! legend, axis ticks and sizes in words, so that every picture reads the same way and
//! no name taken from the server (a relation, role or application) can break the
//! document.
//!
//! The output is plain SVG 1.1 (rectangles, lines, polylines, text, a linear
//! gradient, `<title>` for hover text): what `rsvg-convert` and every browser render.

use std::fmt::Write;

/// Escapes `s` for SVG text and attribute values (`&`, `<`, `>`, `"`, `'`); control
/// characters XML 1.0 cannot hold become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The fill of a cell with nothing to show (no dead item, no write).
pub const EMPTY: &str = "#eeeeee";

/// The stops of the heat scale, pale to dark (a sequential orange-red ramp).
const STOPS: [(f64, [u8; 3]); 5] = [
    (0.0, [0xfe, 0xf0, 0xd9]),
    (0.25, [0xfd, 0xcc, 0x8a]),
    (0.5, [0xfc, 0x8d, 0x59]),
    (0.75, [0xe3, 0x4a, 0x33]),
    (1.0, [0xb3, 0x00, 0x00]),
];

/// The colour of `value` on a scale from 0 to `max`: [`EMPTY`] for 0, else from
/// pale (just above 0) to dark red (`max` and above).
pub fn heat(value: u64, max: u64) -> String {
    if value == 0 || max == 0 {
        return EMPTY.to_string();
    }
    let t = (value as f64 / max as f64).clamp(0.0, 1.0);
    let i = STOPS
        .windows(2)
        .position(|w| t <= w[1].0)
        .unwrap_or(STOPS.len() - 2);
    let ((t0, a), (t1, b)) = (STOPS[i], STOPS[i + 1]);
    let f = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a[0], b[0]),
        mix(a[1], b[1]),
        mix(a[2], b[2])
    )
}

/// Up to about `n` round tick values from 0 to at least `max` (1, 2 or 5 times a
/// power of ten apart); `[0, 1]` when `max` is 0.
pub fn ticks(max: f64, n: usize) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = max / n.max(1) as f64;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    let mut out = vec![0.0];
    let mut v = 0.0;
    while v < max {
        v += step;
        out.push(v);
    }
    out
}

/// Round tick values for a byte axis up to at least `max`: round in the binary unit
/// [`bytes`] labels them with (so `1.0 MB`, `2.0 MB`, not `977 kB`).
pub fn byte_ticks(max: u64, n: usize) -> Vec<u64> {
    let unit = [1u64 << 30, 1 << 20, 1 << 10, 1]
        .into_iter()
        .find(|u| max >= *u)
        .unwrap_or(1);
    ticks(max as f64 / unit as f64, n)
        .into_iter()
        .map(|t| (t * unit as f64).round() as u64)
        .collect()
}

/// A count in few characters: `950`, `12.5k`, `3.2M`, `1.1G`.
pub fn count(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if unit.is_empty() || x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}{unit}")
    } else {
        format!("{x:.1}{unit}")
    }
}

/// Bytes in binary units as PostgreSQL's `pg_size_pretty` names them: `512 bytes`,
/// `12 kB`, `1.5 MB`, `3.0 GB`.
pub fn bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let v = b as f64;
    if v < K {
        format!("{b} bytes")
    } else if v < K * K {
        format!("{:.0} kB", v / K)
    } else if v < K * K * K {
        format!("{:.1} MB", v / K / K)
    } else {
        format!("{:.1} GB", v / K / K / K)
    }
}

/// An SVG document being written: a white page of `width` × `height` pixels whose
/// `<title>` is the picture's title.
pub struct Doc {
    out: String,
}

impl Doc {
    /// Starts a document.
    pub fn new(width: u32, height: u32, title: &str) -> Doc {
        let mut out = String::new();
        let _ = write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="12"><title>{}</title><rect width="{width}" height="{height}" fill="#ffffff"/>"##,
            escape(title)
        );
        Doc { out }
    }

    /// Appends raw SVG the caller built (attribute values already escaped).
    pub fn raw(&mut self, svg: &str) {
        self.out.push_str(svg);
    }

    /// A text at (`x`, `y`); `anchor` is `start`, `middle` or `end`; `extra` adds
    /// attributes (e.g. `font-weight="bold"`).
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" {extra}>{}</text>"#,
            escape(s)
        );
    }

    /// A filled rectangle with hover text `hover` (none when empty).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, hover: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}""#
        );
        if hover.is_empty() {
            self.out.push_str("/>");
        } else {
            let _ = write!(self.out, "><title>{}</title></rect>", escape(hover));
        }
    }

    /// A line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}" stroke="{stroke}"/>"#
        );
    }

    /// A horizontal legend of the heat scale at (`x`, `y`), `w` wide: a gradient
    /// from pale (just above 0) to dark (`max`), round ticks under it, the empty
    /// colour's swatch labelled 0 before it, and `label` above it.
    pub fn heat_legend(&mut self, x: f64, y: f64, w: f64, max: u64, label: &str) {
        self.text(x, y - 6.0, "start", "", label);
        self.rect(x, y, 14.0, 12.0, EMPTY, "");
        self.text(x + 7.0, y + 26.0, "middle", "", "0");
        let gx = x + 24.0;
        let gw = (w - 24.0).max(10.0);
        self.out
            .push_str(r#"<defs><linearGradient id="heat" x1="0" x2="1" y1="0" y2="0">"#);
        for (t, c) in STOPS {
            let _ = write!(
                self.out,
                r##"<stop offset="{t}" stop-color="#{:02x}{:02x}{:02x}"/>"##,
                c[0], c[1], c[2]
            );
        }
        self.out.push_str("</linearGradient></defs>");
        let _ = write!(
            self.out,
            r##"<rect x="{gx:.1}" y="{y:.1}" width="{gw:.1}" height="12" fill="url(#heat)" stroke="#999999" stroke-width="0.5"/>"##
        );
        let max_f = max.max(1) as f64;
        // The gradient starts just above 0 (0 is the swatch): its ticks start at the
        // first round value above 0.
        for t in ticks(max_f, 4).into_iter().skip(1) {
            if t > max_f {
                break;
            }
            let tx = gx + gw * t / max_f;
            self.line(tx, y + 12.0, tx, y + 16.0, "#666666");
            self.text(tx, y + 26.0, "middle", "", &count(t));
        }
    }

    /// Ends the document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape(r#"a<b>&"c"'d'"#),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("x\u{1}y"), "x\u{fffd}y");
    }

    #[test]
    fn heat_runs_from_empty_through_pale_to_dark() {
        assert_eq!(heat(0, 10), EMPTY);
        assert_eq!(heat(5, 0), EMPTY);
        assert_eq!(heat(10, 10), "#b30000");
        assert_eq!(heat(20, 10), "#b30000");
        // Half-way is the middle stop exactly.
        assert_eq!(heat(5, 10), "#fc8d59");
        // An eighth: half-way between the first two stops (fef0d9, fdcc8a).
        assert_eq!(heat(1, 8), "#fedeb2");
    }

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(10.0, 4), vec![0.0, 5.0, 10.0]);
        assert_eq!(ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(0.0, 4), vec![0.0, 1.0]);
        assert_eq!(ticks(1000.0, 4), vec![0.0, 500.0, 1000.0]);
        // 4.6 MB: ticks at whole MB (binary), not at 977 kB.
        let mb = 1u64 << 20;
        assert_eq!(
            byte_ticks(46 * mb / 10, 5),
            vec![0, mb, 2 * mb, 3 * mb, 4 * mb, 5 * mb]
        );
        assert_eq!(byte_ticks(0, 5), vec![0, 1]);
    }

    #[test]
    fn counts_and_bytes_in_words() {
        assert_eq!(count(950.0), "950");
        assert_eq!(count(12_500.0), "12.5k");
        assert_eq!(count(3_000_000.0), "3M");
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(12 * 1024), "12 kB");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MB");
    }

    #[test]
    fn a_document_is_one_svg_element_with_its_title() {
        let mut d = Doc::new(100, 50, "t & u");
        d.rect(1.0, 2.0, 3.0, 4.0, "#000000", "hover <x>");
        d.heat_legend(0.0, 20.0, 80.0, 10, "dead");
        let s = d.finish();
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>"));
        assert!(s.contains("<title>t &amp; u</title>"));
        assert!(s.contains("<title>hover &lt;x&gt;</title></rect>"));
        assert!(s.contains(r#"fill="url(#heat)""#));
    }
}
