//! "Did you mean": the closest known name to a misspelt one.
//!
//! Aliases come first, because a Keras or PyTorch user types names that are far from
//! kiln's by edit distance but mean exactly one thing (`MaxPooling2D`, `Linear`);
//! each layer kind and argument declares its own (`kiln_shape::LayerKind::aliases`).
//! Then a case-insensitive match, then edit distance with rustc's threshold (a third
//! of the word's length).

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub fn suggest<'a>(
    word: &str,
    candidates: &[&'a str],
    aliases: &[(&str, &'a str)],
) -> Option<&'a str> {
    if let Some((_, to)) = aliases.iter().find(|(from, _)| *from == word) {
        return Some(to);
    }
    let lower = word.to_lowercase();
    if let Some(found) = candidates.iter().find(|c| c.to_lowercase() == lower) {
        return Some(found);
    }
    let limit = word.chars().count().max(3) / 3;
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `": did you mean `X`?"` when there is a close match, otherwise `"; "` followed by
/// `otherwise` (a list of what is accepted).
pub fn did_you_mean(
    word: &str,
    candidates: &[&str],
    aliases: &[(&str, &str)],
    otherwise: impl FnOnce() -> String,
) -> String {
    match suggest(word, candidates, aliases) {
        Some(found) => format!(": did you mean `{found}`?"),
        None => format!("; {}", otherwise()),
    }
}

/// `a`, `b` and `c`, each in backticks.
pub fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The edit distance between `a` and `b`: insertions, deletions, substitutions and
/// swaps of two neighbours (`Dnese`), each costing one, as rustc counts them.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &[&str] = &["Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Dropout"];
    const LAYER_ALIASES: &[(&str, &str)] = &[
        ("Conv2D", "Conv2d"),
        ("MaxPooling2D", "MaxPool2d"),
        ("Linear", "Dense"),
    ];

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("stride", "stride"), 0);
        assert_eq!(edit_distance("strides", "stride"), 1);
        assert_eq!(edit_distance("Dnese", "Dense"), 1);
    }

    #[test]
    fn keras_and_pytorch_names_map_to_kiln() {
        assert_eq!(suggest("Conv2D", LAYERS, LAYER_ALIASES), Some("Conv2d"));
        assert_eq!(
            suggest("MaxPooling2D", LAYERS, LAYER_ALIASES),
            Some("MaxPool2d")
        );
        assert_eq!(suggest("Linear", LAYERS, LAYER_ALIASES), Some("Dense"));
    }

    #[test]
    fn typos_and_case_are_forgiven() {
        assert_eq!(suggest("Dnese", LAYERS, &[]), Some("Dense"));
        assert_eq!(suggest("dense", LAYERS, &[]), Some("Dense"));
        assert_eq!(suggest("Dropuot", LAYERS, &[]), Some("Dropout"));
        assert_eq!(suggest("maxpool2d", LAYERS, &[]), Some("MaxPool2d"));
    }

    #[test]
    fn distant_words_get_no_suggestion() {
        assert_eq!(suggest("BatchNormalization", LAYERS, LAYER_ALIASES), None);
        assert_eq!(suggest("Lstm", LAYERS, &[]), None);
        assert_eq!(suggest("x", &["stride", "size"], &[]), None);
    }

    #[test]
    fn closest_candidate_wins() {
        let args = &["size", "stride", "padding"];
        assert_eq!(suggest("strde", args, &[]), Some("stride"));
        assert_eq!(suggest("sise", args, &[]), Some("size"));
        assert_eq!(
            suggest("strides", args, &[("strides", "stride")]),
            Some("stride")
        );
    }

    #[test]
    fn lists_read_like_prose() {
        assert_eq!(list(&["a"]), "`a`");
        assert_eq!(list(&["a", "b", "c"]), "`a`, `b` and `c`");
        assert_eq!(
            did_you_mean("vaild", &["valid", "same"], &[], String::new),
            ": did you mean `valid`?"
        );
        assert_eq!(
            did_you_mean("full", &["valid", "same"], &[], || "x".into()),
            "; x"
        );
    }
}
