//! The README's tables say what is true: its Kafka APIs and versions are
//! exactly what the handler table serves (and so what ApiVersions
//! advertises), its tested clients' versions what the tests install.

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

/// The README's table of tested clients names the versions the tests
/// install (tests/clients/requirements.txt, package.json, pom.xml,
/// Cargo.lock).
#[test]
fn the_readme_client_table_names_the_installed_versions() {
    let read = |path: &str| {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let readme = read("README.md");
    let pinned = |text: &str, prefix: &str, end: char| -> String {
        let at = text
            .find(prefix)
            .unwrap_or_else(|| panic!("{prefix} is pinned"))
            + prefix.len();
        text[at..].split(end).next().unwrap().trim().to_string()
    };
    let requirements = read("tests/clients/requirements.txt");
    let package = read("tests/clients/kafkajs/package.json");
    let pom = read("tests/clients/java/pom.xml");
    let lock = read("Cargo.lock");
    let librdkafka = pinned(&lock, "name = \"rdkafka-sys\"\nversion = \"", '"');
    let librdkafka = librdkafka.split_once('+').unwrap().1.to_string();
    let java = pinned(&pom, "<kafka.version>", '<');
    let expected = [
        ("librdkafka (rdkafka crate)", librdkafka),
        ("Java (kafka-clients)", java.clone()),
        ("Kafka Streams", java),
        (
            "kafka-python",
            pinned(&requirements, "kafka-python==", '\n'),
        ),
        ("aiokafka", pinned(&requirements, "aiokafka==", '\n')),
        ("kafkajs", pinned(&package, "\"kafkajs\": \"", '"')),
        (
            "rskafka",
            pinned(&lock, "name = \"rskafka\"\nversion = \"", '"'),
        ),
    ];
    for (client, version) in expected {
        let row = format!("| {client} | {version}");
        assert!(readme.contains(&row), "README's client table: {row:?}");
    }
}
