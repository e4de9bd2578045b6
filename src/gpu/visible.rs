//! `CUDA_VISIBLE_DEVICES`: which GPUs a CUDA process sees, and in what order.

/// The NVML indices of the GPUs that CUDA shows for this `CUDA_VISIBLE_DEVICES` setting, in
/// CUDA's order.
///
/// `physical` lists every GPU as (NVML index, UUID such as `GPU-8e0c…`) in CUDA's default order;
/// a decimal entry in the setting is a position in that list. Unset shows every GPU; an empty
/// setting shows none. Entries are separated by commas, and each is a decimal position or a
/// UUID, whole or any prefix that names one GPU alone, with or without `GPU-`. As CUDA does, the
/// list ends at the first entry that is not valid (out of range, unknown, ambiguous, repeated or
/// not a number), keeping the entries before it.
///
/// MIG instances (`MIG-…` UUIDs) are not supported: such an entry ends the list like any other
/// invalid one.
pub fn visible(setting: Option<&str>, physical: &[(usize, String)]) -> Vec<usize> {
    let Some(setting) = setting else {
        return physical.iter().map(|(index, _)| *index).collect();
    };
    let mut chosen = Vec::new();
    for entry in setting.split(',') {
        match resolve(entry.trim(), physical) {
            Some(index) if !chosen.contains(&index) => chosen.push(index),
            _ => break,
        }
    }
    chosen
}

/// The NVML index that one entry names, if it names exactly one GPU.
fn resolve(entry: &str, physical: &[(usize, String)]) -> Option<usize> {
    if entry.is_empty() {
        return None;
    }
    // An all-digit entry is a position even where it would also prefix a UUID; `parse` alone
    // would also take "+1".
    if entry.bytes().all(|b| b.is_ascii_digit()) {
        let position = entry.parse::<usize>().ok()?;
        return physical.get(position).map(|(index, _)| *index);
    }
    let prefix = entry.strip_prefix("GPU-").unwrap_or(entry);
    if prefix.is_empty() {
        return None;
    }
    // A `MIG-` entry falls through to here and matches no GPU UUID, so it ends the list.
    let mut named = physical.iter().filter(|(_, uuid)| {
        let bare = uuid.strip_prefix("GPU-").unwrap_or(uuid);
        !bare.is_empty() && bare.starts_with(prefix)
    });
    match (named.next(), named.next()) {
        (Some((index, _)), None) => Some(*index),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::visible;

    /// Three GPUs whose NVML indices differ from their positions, to catch one used for the other.
    fn three() -> Vec<(usize, String)> {
        vec![
            (10, "GPU-8e0c1a2b-0000-1111-2222-333344445555".to_string()),
            (11, "GPU-8e0d9f00-aaaa-bbbb-cccc-ddddeeeeffff".to_string()),
            (12, "GPU-77aa0000-1234-5678-9abc-def012345678".to_string()),
        ]
    }

    #[test]
    fn unset_shows_every_gpu_in_order() {
        assert_eq!(visible(None, &three()), vec![10, 11, 12]);
    }

    #[test]
    fn empty_shows_none() {
        assert_eq!(visible(Some(""), &three()), Vec::<usize>::new());
        assert_eq!(visible(Some("  "), &three()), Vec::<usize>::new());
    }

    #[test]
    fn positions_reorder() {
        assert_eq!(visible(Some("1,0"), &three()), vec![11, 10]);
        assert_eq!(visible(Some("2"), &three()), vec![12]);
    }

    #[test]
    fn out_of_range_ends_the_list() {
        assert_eq!(visible(Some("0,7,1"), &three()), vec![10]);
        assert_eq!(visible(Some("3"), &three()), Vec::<usize>::new());
    }

    #[test]
    fn full_uuid() {
        let setting = "GPU-77aa0000-1234-5678-9abc-def012345678,0";
        assert_eq!(visible(Some(setting), &three()), vec![12, 10]);
    }

    #[test]
    fn uuid_prefix_with_or_without_gpu() {
        assert_eq!(visible(Some("GPU-77"), &three()), vec![12]);
        // All digits: read as a position (77, out of range), never as a UUID prefix.
        assert_eq!(visible(Some("77"), &three()), Vec::<usize>::new());
        assert_eq!(visible(Some("77a"), &three()), vec![12]);
        assert_eq!(visible(Some("8e0d,GPU-8e0c"), &three()), vec![11, 10]);
    }

    #[test]
    fn ambiguous_prefix_ends_the_list() {
        assert_eq!(visible(Some("2,GPU-8e0,0"), &three()), vec![12]);
        assert_eq!(visible(Some("8e"), &three()), Vec::<usize>::new());
    }

    #[test]
    fn unknown_uuid_ends_the_list() {
        assert_eq!(visible(Some("1,GPU-ffff,0"), &three()), vec![11]);
    }

    #[test]
    fn repeat_ends_the_list() {
        assert_eq!(visible(Some("0,1,0,2"), &three()), vec![10, 11]);
        assert_eq!(visible(Some("GPU-77aa,2"), &three()), vec![12]);
    }

    #[test]
    fn junk_ends_the_list() {
        assert_eq!(visible(Some("1,gpu0,0"), &three()), vec![11]);
        assert_eq!(visible(Some("+1"), &three()), Vec::<usize>::new());
        assert_eq!(visible(Some("-1"), &three()), Vec::<usize>::new());
        assert_eq!(visible(Some("0,,1"), &three()), vec![10]);
        assert_eq!(visible(Some("GPU-"), &three()), Vec::<usize>::new());
        assert_eq!(
            visible(Some("99999999999999999999999"), &three()),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn mig_uuid_ends_the_list() {
        let setting = "0,MIG-8e0c1a2b-0000-1111-2222-333344445555,1";
        assert_eq!(visible(Some(setting), &three()), vec![10]);
    }

    #[test]
    fn spaces_around_entries_are_ignored() {
        assert_eq!(visible(Some(" 2 , 0 "), &three()), vec![12, 10]);
        assert_eq!(visible(Some("0, GPU-8e0d "), &three()), vec![10, 11]);
    }

    #[test]
    fn trailing_comma_keeps_what_came_before() {
        assert_eq!(visible(Some("1,0,"), &three()), vec![11, 10]);
    }
}
