#![no_main]
//! See docs/fuzzing.md; the body is `bftorderer_fuzz::channel_wire`, replayed over
//! fuzz/corpus/channel_wire/ by `cargo test -p orderer --test fuzz_corpus`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bftorderer_fuzz::channel_wire(data);
});
