//! Small-cell suppression of count tables, so that a published table never shows a count of
//! fewer than k subjects nor lets one be worked out by subtraction.

/// Which cells of one group of counts to hide, given the threshold `k` (at least 1).
///
/// 1. **Primary suppression:** every count below `k` (including 0) is hidden.
/// 2. **Complementary suppression:** while exactly one cell is hidden, or the hidden cells add
///    up to less than `k`, the smallest shown cell (the first one in table order on a tie) is
///    hidden too, until the rule holds or every cell is hidden.
///
/// So, whenever any cell of the group is hidden, at least two are, and together they hold at
/// least `k` subjects (unless the whole group is hidden). Someone who knows the group's exact
/// total from elsewhere learns only the sum of the hidden cells: never one hidden cell, and never
/// a hidden group of fewer than `k` subjects.
pub(crate) fn hidden_cells(counts: &[u64], k: u64) -> Vec<bool> {
    let mut hidden: Vec<bool> = counts.iter().map(|&count| count < k).collect();
    loop {
        let n_hidden = hidden.iter().filter(|&&is_hidden| is_hidden).count();
        let hidden_sum: u64 = counts
            .iter()
            .zip(&hidden)
            .filter(|(_, is_hidden)| **is_hidden)
            .map(|(count, _)| *count)
            .sum();
        if n_hidden == 0 || (n_hidden >= 2 && hidden_sum >= k) {
            break;
        }
        let smallest_shown = (0..counts.len())
            .filter(|&cell_idx| !hidden[cell_idx])
            .min_by_key(|&cell_idx| counts[cell_idx]);
        match smallest_shown {
            Some(cell_idx) => hidden[cell_idx] = true,
            None => break,
        }
    }
    hidden
}
