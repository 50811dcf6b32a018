//! Optimal one-to-one assignment (the linear sum assignment problem), used by
//! the tracker to pair tracks with detections and by the tracking metrics
//! to pair ground truth with hypotheses.
//!
//! [`assign`] takes a rectangular cost matrix in which some pairs are not
//! allowed and returns the pairs of a matching that has the most allowed
//! pairs and, among those, the least total cost. It follows py-motmetrics'
//! treatment of missing edges: a forbidden pair costs more than any set of
//! allowed ones, and is dropped from the answer if the solver still picks
//! it. The solver is the Hungarian method with potentials (Kuhn-Munkres,
//! Jonker-Volgenant style shortest augmenting paths), `O(n^2 m)`.

/// The cost of pairing row `r` with column `c`, or `None` when not allowed.
/// Costs must be finite; a non-finite cost counts as not allowed.
pub fn assign(
    rows: usize,
    cols: usize,
    cost: impl Fn(usize, usize) -> Option<f64>,
) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    // Work on n <= m (rows of the working matrix <= its columns).
    let transpose = rows > cols;
    let (n, m) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |i: usize, j: usize| {
        let c = if transpose { cost(j, i) } else { cost(i, j) };
        c.filter(|v| v.is_finite())
    };
    let mut allowed: Vec<Option<f64>> = Vec::with_capacity(n * m);
    let mut max_abs = 0.0f64;
    for i in 0..n {
        for j in 0..m {
            let c = at(i, j);
            if let Some(v) = c {
                max_abs = max_abs.max(v.abs());
            }
            allowed.push(c);
        }
    }
    if allowed.iter().all(Option::is_none) {
        return Vec::new();
    }
    // A forbidden pair must cost more than choosing the worst allowed pair
    // for every row instead (as py-motmetrics' `add_expensive_edges`).
    let c = max_abs + 1.0;
    let large = 2.0 * n as f64 * c + 1.0;
    let a = |i: usize, j: usize| allowed[i * m + j].unwrap_or(large);

    // Hungarian method, 1-based with a virtual column 0.
    let inf = f64::INFINITY;
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![inf; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.fill(inf);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    for j in 1..=m {
        let i = p[j];
        if i == 0 || allowed[(i - 1) * m + (j - 1)].is_none() {
            continue;
        }
        out.push(if transpose {
            (j - 1, i - 1)
        } else {
            (i - 1, j - 1)
        });
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(rows: usize, cols: usize, m: &[Option<f64>]) -> (usize, f64) {
        // Best (most pairs, least cost) over every injective row -> column map.
        fn rec(
            r: usize,
            rows: usize,
            cols: usize,
            m: &[Option<f64>],
            used: &mut Vec<bool>,
            acc: (usize, f64),
            best: &mut (usize, f64),
        ) {
            if r == rows {
                if acc.0 > best.0 || (acc.0 == best.0 && acc.1 < best.1 - 1e-9) {
                    *best = acc;
                }
                return;
            }
            rec(r + 1, rows, cols, m, used, acc, best);
            for c in 0..cols {
                if used[c] {
                    continue;
                }
                if let Some(v) = m[r * cols + c] {
                    used[c] = true;
                    rec(r + 1, rows, cols, m, used, (acc.0 + 1, acc.1 + v), best);
                    used[c] = false;
                }
            }
        }
        let mut best = (0, 0.0);
        rec(
            0,
            rows,
            cols,
            m,
            &mut vec![false; cols],
            (0, 0.0),
            &mut best,
        );
        best
    }

    #[test]
    fn small_cases() {
        assert!(assign(0, 3, |_, _| Some(1.0)).is_empty());
        assert!(assign(2, 2, |_, _| None).is_empty());
        let m = [[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]];
        assert_eq!(
            assign(3, 3, |r, c| Some(m[r][c])),
            vec![(0, 1), (1, 0), (2, 2)]
        );
        // Cardinality first: the cheap pair (0, 0) would leave row 1 alone.
        let m = [[Some(0.0), Some(10.0)], [Some(1.0), None]];
        assert_eq!(assign(2, 2, |r, c| m[r][c]), vec![(0, 1), (1, 0)]);
        // More rows than columns.
        let m = [[5.0], [1.0], [3.0]];
        assert_eq!(assign(3, 1, |r, c| Some(m[r][c])), vec![(1, 0)]);
    }

    proptest::proptest! {
        #[test]
        fn optimal_like_brute_force(
            rows in 1usize..6,
            cols in 1usize..6,
            cells in proptest::collection::vec(proptest::option::weighted(0.7, 0.0f64..10.0), 36),
        ) {
            let m: Vec<Option<f64>> = cells[..rows * cols].to_vec();
            let got = assign(rows, cols, |r, c| m[r * cols + c]);
            let mut rs: Vec<usize> = got.iter().map(|p| p.0).collect();
            let mut cs: Vec<usize> = got.iter().map(|p| p.1).collect();
            rs.dedup();
            cs.sort_unstable();
            cs.dedup();
            proptest::prop_assert_eq!(rs.len(), got.len());
            proptest::prop_assert_eq!(cs.len(), got.len());
            let cost: f64 = got.iter().map(|&(r, c)| m[r * cols + c].unwrap()).sum();
            let (n, best) = brute(rows, cols, &m);
            proptest::prop_assert_eq!(got.len(), n);
            proptest::prop_assert!((cost - best).abs() < 1e-6, "{cost} vs {best}");
        }
    }
}
