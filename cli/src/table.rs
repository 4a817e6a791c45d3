//! Tables laid out like docker's (Go's tabwriter with minimum width 10 and padding 3): every
//! column but the last is as wide as its widest cell plus 3, and at least 10.

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Renders `rows` (the header first) as lines ending in `\n`.
pub fn render<S: AsRef<str>>(rows: &[Vec<S>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let widest = rows.iter().filter_map(|r| r.get(c)).map(|s| s.as_ref().chars().count()).max().unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            let cell = cell.as_ref();
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', widths[c] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_widest_cell_plus_three_and_at_least_ten() {
        let rows = vec![vec!["REPOSITORY", "TAG", "SIZE"], vec!["busybox", "latest", "4.26MB"]];
        assert_eq!(render(&rows), "REPOSITORY   TAG       SIZE\nbusybox      latest    4.26MB\n");
    }
}
