//! The SVG heat map of one relation: block ranges along the x axis, dead-tuple
//! density as colour (pale for none, dark red for the densest range).

use std::fmt::Write;

/// One range of the picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// First block.
    pub first_block: u32,
    /// Dead tuples plus dead line pointers.
    pub dead: u64,
}

/// Width of the drawing area in pixels.
pub const WIDTH: u32 = 800;
/// Height of the bar.
pub const HEIGHT: u32 = 40;

/// Colour for `dead` relative to `max` (0 = none).
pub fn colour(dead: u64, max: u64) -> String {
    if dead == 0 || max == 0 {
        return "#f4f4f4".to_string();
    }
    let t = (dead as f64 / max as f64).clamp(0.0, 1.0);
    // From #fee8c8 (pale) to #b30000 (dark red).
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(0xfe, 0xb3),
        mix(0xe8, 0x00),
        mix(0xc8, 0x00)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `cells` (sorted by block) of a relation whose ranges span `range_blocks`
/// blocks, up to block `end_block` (exclusive).
pub fn render(title: &str, cells: &[Cell], range_blocks: u32, end_block: u32) -> String {
    let end = end_block.max(1);
    let max = cells.iter().map(|c| c.dead).max().unwrap_or(0);
    let x = |b: u32| (b as f64 / end as f64 * WIDTH as f64 * 100.0).round() / 100.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#,
        w = WIDTH + 20,
        h = HEIGHT + 60
    );
    let _ = write!(
        s,
        r#"<title>{}</title><text x="10" y="16">{}</text>"#,
        escape(title),
        escape(title)
    );
    let _ = write!(
        s,
        r##"<rect x="10" y="24" width="{WIDTH}" height="{HEIGHT}" fill="#f4f4f4" stroke="#999"/>"##
    );
    for c in cells {
        let last = c.first_block.saturating_add(range_blocks).min(end);
        let (x0, x1) = (x(c.first_block), x(last));
        let _ = write!(
            s,
            r#"<rect x="{:.2}" y="24" width="{:.2}" height="{HEIGHT}" fill="{}"><title>blocks {}..{}: {} dead</title></rect>"#,
            10.0 + x0,
            (x1 - x0).max(0.5),
            colour(c.dead, max),
            c.first_block,
            last.saturating_sub(1),
            c.dead
        );
    }
    let _ = write!(
        s,
        r#"<text x="10" y="{y}">block 0</text><text x="{xe}" y="{y}" text-anchor="end">block {}</text><text x="10" y="{y2}">densest range: {max} dead tuples and line pointers</text></svg>"#,
        end.saturating_sub(1),
        y = HEIGHT + 40,
        y2 = HEIGHT + 56,
        xe = WIDTH + 10
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_from_pale_to_dark() {
        assert_eq!(colour(0, 10), "#f4f4f4");
        assert_eq!(colour(10, 10), "#b30000");
        assert_eq!(colour(5, 10), "#d97464");
    }

    #[test]
    fn one_rect_per_range_at_its_place() {
        let cells = [
            Cell {
                first_block: 0,
                dead: 4,
            },
            Cell {
                first_block: 128,
                dead: 2,
            },
        ];
        let svg = render("public.t <x>", &cells, 128, 256);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("public.t &lt;x&gt;"));
        // Range 0 spans pixels 0..400 of 800, range 1 400..800.
        assert!(
            svg.contains(r#"<rect x="10.00" y="24" width="400.00""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="410.00" y="24" width="400.00""#),
            "{svg}"
        );
        assert!(svg.contains("blocks 128..255: 2 dead"));
        assert!(svg.contains("#b30000"));
    }
}
