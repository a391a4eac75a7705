//! Property tests: whatever text is stored or configured, opening and key parsing never
//! panic, and any change to a sealed value is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatterfly_vault::{Key, KeyRing};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn opening_arbitrary_text_never_panics(s in "\\PC{0,120}|cf1:[0-9a-f]{16}:[A-Za-z0-9_\\-]{0,80}") {
        let ring = KeyRing::new(Key::generate(), vec![]);
        prop_assert!(ring.open(&s, b"aad").is_err());
    }

    #[test]
    fn key_parsing_never_panics(s in "\\PC{0,100}") {
        let _ = Key::parse(&s);
    }

    #[test]
    fn any_single_character_change_is_refused(msg in prop::collection::vec(any::<u8>(), 0..64), pos in any::<usize>(), aad in "[a-z0-9:]{0,20}") {
        let ring = KeyRing::new(Key::generate(), vec![]);
        let sealed = ring.seal(&msg, aad.as_bytes()).unwrap();
        prop_assert_eq!(&*ring.open(&sealed, aad.as_bytes()).unwrap(), &msg[..]);
        let body_start = sealed.rfind(':').unwrap() + 1;
        let i = body_start + pos % (sealed.len() - body_start);
        let mut bytes = sealed.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        if forged != sealed {
            prop_assert!(ring.open(&forged, aad.as_bytes()).is_err());
        }
    }
}
