//! The README's table of Kafka APIs and versions says exactly what the
//! handler table serves (and so what ApiVersions advertises).

use net::handlers::HANDLERS;

#[test]
fn the_readme_api_table_matches_the_handler_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- api-table")
        .expect("README has the API table");
    let end = readme
        .find("<!-- /api-table -->")
        .expect("the API table ends");
    let mut documented: Vec<(String, i16, i16, i16)> = readme[start..end]
        .lines()
        .filter(|line| {
            line.starts_with("| ") && !line.starts_with("| API") && !line.starts_with("| ---")
        })
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (min, max) = cells[3].split_once('-').expect("versions are MIN-MAX");
            (
                cells[1].to_string(),
                cells[2].parse().unwrap(),
                min.parse().unwrap(),
                max.parse().unwrap(),
            )
        })
        .collect();
    let mut served: Vec<(String, i16, i16, i16)> = HANDLERS
        .iter()
        .map(|h| {
            (
                format!("{:?}", h.api_key),
                h.api_key as i16,
                h.min_version,
                h.max_version,
            )
        })
        .collect();
    documented.sort_by_key(|row| row.1);
    served.sort_by_key(|row| row.1);
    assert_eq!(
        documented, served,
        "README's API table differs from net::handlers::HANDLERS"
    );
}
