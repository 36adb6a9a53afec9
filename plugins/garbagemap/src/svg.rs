//! The SVG heat map of one relation: its block ranges wrap into rows (block 0 at the
//! top left, reading like text) about twice as wide as the grid is high, so a large
//! relation is a rectangle; colour is the
//! dead tuples plus dead line pointers of a cell on a scale from 0 to the densest
//! cell, with a legend; hovering a cell names its blocks and counts.
//!
//! At most [`MAX_CELLS`] cells are drawn: a relation with more ranges than that
//! (100,000 ranges of 128 blocks is a 100 GB table) is drawn with several
//! consecutive ranges per cell, their counts summed, and the title says how many.

use walker_abi::svg::{self, Doc};

/// One tracked range of the relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// First block.
    pub first_block: u64,
    /// Dead tuples.
    pub dead_tuples: u64,
    /// Dead line pointers.
    pub dead_lps: u64,
}

/// Cells per row at most.
pub const MAX_COLS: u64 = 64;
/// Cells drawn at most (64 rows of 64).
pub const MAX_CELLS: u64 = MAX_COLS * MAX_COLS;
/// Width of the grid in pixels.
const GRID_W: f64 = 768.0;
/// Left margin (row labels up to `block 134217727`).
const LEFT: f64 = 112.0;
/// Top margin (title lines).
const TOP: f64 = 60.0;
/// Height of a cell when the row is wide (few cells).
const MAX_CELL_H: f64 = 40.0;

/// What the picture says about one relation besides its ranges.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The relation's name (or its relfilenode and database).
    pub name: &'a str,
    /// Blocks per range.
    pub range_blocks: u64,
    /// One past the highest block tracked.
    pub end_block: u64,
    /// The map is exact up to this LSN.
    pub through_lsn: u64,
}

/// The layout: how many ranges a cell holds and how the cells wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Ranges from block 0 to the end.
    pub ranges: u64,
    /// Consecutive ranges per cell.
    pub per_cell: u64,
    /// Cells.
    pub cells: u64,
    /// Cells per row.
    pub cols: u64,
    /// Rows.
    pub rows: u64,
}

impl Grid {
    /// The grid for `ranges` ranges (at least one).
    pub fn for_ranges(ranges: u64) -> Grid {
        let ranges = ranges.max(1);
        let per_cell = ranges.div_ceil(MAX_CELLS);
        let cells = ranges.div_ceil(per_cell);
        // About twice as wide as high: sqrt(2 × cells) columns, at most MAX_COLS.
        let cols = ((2.0 * cells as f64).sqrt().ceil() as u64).clamp(1, MAX_COLS.min(cells));
        Grid {
            ranges,
            per_cell,
            cells,
            cols,
            rows: cells.div_ceil(cols),
        }
    }
}

/// A cell's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sum {
    tracked: u64,
    dead_tuples: u64,
    dead_lps: u64,
}

fn mb(blocks: u64) -> String {
    svg::bytes(blocks.saturating_mul(8192))
}

/// The picture of a relation whose tracked ranges are `cells` (any order).
pub fn render(frame: &Frame<'_>, cells: &[Cell]) -> String {
    let rb = frame.range_blocks.max(1);
    let end = cells
        .iter()
        .map(|c| c.first_block.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(frame.end_block)
        .max(1);
    let grid = Grid::for_ranges(end.div_ceil(rb));
    let blocks_per_cell = grid.per_cell.saturating_mul(rb);
    let mut sums = vec![Sum::default(); grid.cells as usize];
    let (mut total_t, mut total_l) = (0u64, 0u64);
    for c in cells {
        let i = ((c.first_block / rb) / grid.per_cell).min(grid.cells - 1) as usize;
        let s = &mut sums[i];
        s.tracked += 1;
        s.dead_tuples = s.dead_tuples.saturating_add(c.dead_tuples);
        s.dead_lps = s.dead_lps.saturating_add(c.dead_lps);
        total_t = total_t.saturating_add(c.dead_tuples);
        total_l = total_l.saturating_add(c.dead_lps);
    }
    let dead = |s: &Sum| s.dead_tuples.saturating_add(s.dead_lps);
    let max = sums.iter().map(dead).max().unwrap_or(0);
    let total = total_t.saturating_add(total_l);

    let cell_w = GRID_W / grid.cols as f64;
    let cell_h = cell_w.min(MAX_CELL_H);
    let grid_h = cell_h * grid.rows as f64;
    let width = (LEFT + GRID_W + 16.0) as u32;
    let height = (TOP + grid_h + 64.0).ceil() as u32;
    let title = format!(
        "{}: dead tuples and dead line pointers per block range",
        frame.name
    );
    let mut d = Doc::new(width, height, &title);
    d.text(
        LEFT,
        18.0,
        "start",
        r#"font-size="14" font-weight="bold""#,
        &title,
    );
    let cell_words = if grid.per_cell == 1 {
        format!("one cell per {rb}-block range ({})", mb(rb))
    } else {
        format!(
            "one cell per {} ranges of {rb} blocks ({})",
            grid.per_cell,
            mb(blocks_per_cell)
        )
    };
    d.text(
        LEFT,
        34.0,
        "start",
        r##"fill="#444444""##,
        &format!(
            "blocks 0..{} ({}), {cell_words}, {} per row",
            end - 1,
            mb(end),
            grid.cols,
        ),
    );
    d.text(
        LEFT,
        48.0,
        "start",
        r##"fill="#444444""##,
        &format!(
            "{total_t} dead tuples, {total_l} dead line pointers; through LSN {:X}/{:X}",
            frame.through_lsn >> 32,
            frame.through_lsn as u32
        ),
    );
    // The relation's extent: full rows, then the last row's cells.
    let last_row_cells = grid.cells - (grid.rows - 1) * grid.cols;
    let mut extent = String::new();
    if grid.rows > 1 {
        extent.push_str(&format!(
            r#"<rect x="{LEFT}" y="{TOP}" width="{GRID_W}" height="{:.2}"/>"#,
            cell_h * (grid.rows - 1) as f64
        ));
    }
    extent.push_str(&format!(
        r#"<rect x="{LEFT}" y="{:.2}" width="{:.2}" height="{cell_h:.2}"/>"#,
        TOP + cell_h * (grid.rows - 1) as f64,
        cell_w * last_row_cells as f64,
    ));
    d.raw(&format!(
        r##"<g fill="#ffffff" stroke="#cccccc" stroke-width="0.5">{extent}</g>"##
    ));
    for (i, s) in sums.iter().enumerate() {
        if s.tracked == 0 {
            continue;
        }
        let i = i as u64;
        let (row, col) = (i / grid.cols, i % grid.cols);
        let first = i.saturating_mul(blocks_per_cell);
        let last = first.saturating_add(blocks_per_cell).min(end) - 1;
        let share = if total == 0 {
            0.0
        } else {
            dead(s) as f64 * 100.0 / total as f64
        };
        let hover = format!(
            "blocks {first}..{last}: {} dead tuples, {} dead line pointers ({share:.1}% of the relation's){}",
            s.dead_tuples,
            s.dead_lps,
            if grid.per_cell > 1 {
                format!("; {} of its {} ranges tracked", s.tracked, grid.per_cell)
            } else {
                String::new()
            }
        );
        // Cells overlap by a hair so that no seam shows between neighbours.
        d.rect(
            LEFT + col as f64 * cell_w,
            TOP + row as f64 * cell_h,
            cell_w + 0.05,
            cell_h + 0.05,
            &svg::heat(dead(s), max),
            &hover,
        );
    }
    // Row labels: the first block of a row, on at most 16 rows.
    let every = grid.rows.div_ceil(16).max(1);
    for row in (0..grid.rows).step_by(every as usize) {
        let block = row
            .saturating_mul(grid.cols)
            .saturating_mul(blocks_per_cell);
        d.text(
            LEFT - 6.0,
            TOP + row as f64 * cell_h + cell_h / 2.0 + 4.0,
            "end",
            r#"font-size="11""#,
            &format!("block {block}"),
        );
    }
    d.heat_legend(
        LEFT,
        TOP + grid_h + 28.0,
        300.0,
        max,
        "dead tuples + dead line pointers per cell (white: no change seen in its blocks)",
    );
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(end_block: u64) -> Frame<'static> {
        Frame {
            name: "public.t <x>",
            range_blocks: 128,
            end_block,
            through_lsn: 0x1_0000_00a0,
        }
    }

    fn titles(svg: &str) -> Vec<&str> {
        svg.split("<title>")
            .skip(2)
            .filter_map(|s| s.split("</title>").next())
            .collect()
    }

    #[test]
    fn grids_wrap_and_aggregate() {
        assert_eq!(
            Grid::for_ranges(2),
            Grid {
                ranges: 2,
                per_cell: 1,
                cells: 2,
                cols: 2,
                rows: 1
            }
        );
        // 100 ranges: sqrt(200) = 14.1, so 15 per row, 7 rows (the last holds 10).
        let g = Grid::for_ranges(100);
        assert_eq!((g.per_cell, g.cols, g.rows), (1, 15, 7));
        // 26 ranges (pgbench_accounts at scale 2): 8 per row, 4 rows.
        let g = Grid::for_ranges(26);
        assert_eq!((g.cols, g.rows), (8, 4));
        // 100,000 ranges: 25 per cell (100000 / 4096 = 24.4), 4000 cells, 63 rows.
        let g = Grid::for_ranges(100_000);
        assert_eq!((g.per_cell, g.cells, g.cols, g.rows), (25, 4000, 64, 63));
        assert_eq!(Grid::for_ranges(0).cells, 1);
    }

    #[test]
    fn one_cell_per_range_with_its_counts() {
        let cells = [
            Cell {
                first_block: 0,
                dead_tuples: 4,
                dead_lps: 0,
            },
            Cell {
                first_block: 128,
                dead_tuples: 2,
                dead_lps: 2,
            },
        ];
        let s = render(&frame(200), &cells);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("public.t &lt;x&gt;: dead tuples"));
        assert!(s.contains("through LSN 1/A0"), "{s}");
        // Two cells in one row of 768 px: 384 px each, 40 px high.
        assert!(
            s.contains(
                r##"<rect x="112.00" y="60.00" width="384.05" height="40.05" fill="#b30000">"##
            ),
            "{s}"
        );
        assert!(s.contains(r#"<rect x="496.00" y="60.00" width="384.05""#));
        assert_eq!(
            titles(&s),
            [
                "blocks 0..127: 4 dead tuples, 0 dead line pointers (50.0% of the relation&apos;s)",
                "blocks 128..199: 2 dead tuples, 2 dead line pointers (50.0% of the relation&apos;s)"
            ]
        );
        assert!(s.contains("url(#heat)"));
    }

    #[test]
    fn a_hundred_thousand_ranges_fit_in_4000_cells() {
        // Every 10th range of a 100,000-range relation has one dead tuple.
        let cells: Vec<Cell> = (0..100_000u64)
            .step_by(10)
            .map(|i| Cell {
                first_block: i * 128,
                dead_tuples: 1,
                dead_lps: 0,
            })
            .collect();
        let s = render(&frame(100_000 * 128), &cells);
        let t = titles(&s);
        assert_eq!(t.len(), 4000);
        // 25 ranges per cell = 3200 blocks; ranges 0, 10, 20 in the first cell.
        assert!(
            t[0].starts_with("blocks 0..3199: 3 dead tuples, 0 dead line pointers")
                && t[0].ends_with("; 3 of its 25 ranges tracked"),
            "{}",
            t[0]
        );
        assert!(s.contains("one cell per 25 ranges of 128 blocks"));
        // 64 cells of 12 px per row, 63 rows: a rectangle, not a strip.
        assert!(s.contains(r#"width="896" height="880""#), "{}", &s[..200]);
        let sum: u64 = t
            .iter()
            .map(|x| {
                x[x.find(": ").unwrap() + 2..]
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(sum, 10_000);
    }
}
