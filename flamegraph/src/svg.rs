//! Drawing folded stacks as an SVG through inferno.

use std::io::{Cursor, Write};

use inferno::flamegraph::{self, FuncFrameAttrsMap, Options};

use crate::{FlamegraphError, Folded};

/// The text shown when the pointer rests on any frame of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tooltip {
    /// The function's frame name, as passed to [`Folded::add`].
    pub function: String,
    /// What to show (one line; tabs and line breaks become spaces).
    pub text: String,
}

/// How to label the picture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SvgOptions {
    /// The title over the graph.
    pub title: String,
    /// A second line under the title (units, calibration).
    pub subtitle: Option<String>,
    /// What the values count, as in "1,234 page-faults".
    pub count_name: String,
    /// Per-function tooltips; functions without one get inferno's
    /// "name (value count_name, percent)".
    pub tooltips: Vec<Tooltip>,
    /// Width in pixels; `None` for inferno's default (1200).
    pub width: Option<usize>,
}

/// Draws `folded` as a flamegraph SVG: frames grow upwards from the
/// outermost one, siblings sorted by name, colors stable per function
/// name.
///
/// # Errors
///
/// [`FlamegraphError::Empty`] when no stack has a positive value,
/// [`FlamegraphError::Io`] when writing fails.
pub fn write_svg<W: Write>(
    folded: &Folded,
    opts: &SvgOptions,
    out: W,
) -> Result<(), FlamegraphError> {
    let lines = folded.drawable_lines();
    if lines.is_empty() {
        return Err(FlamegraphError::Empty);
    }
    let mut inferno_opts = inferno_options(opts)?;
    flamegraph::from_lines(&mut inferno_opts, lines.iter().map(String::as_str), out)?;
    Ok(())
}

/// Draws a differential flamegraph of two runs: frame widths are the
/// `new` run's values, colors the change from `base` (red: grew, blue:
/// shrank, by the change's share of the total). With `normalize`, the base
/// run is first scaled to the new run's total, so a run that did more work
/// overall does not color everything red. Paths only in `base` are not
/// drawn (they have no width in `new`).
///
/// # Errors
///
/// As [`write_svg`], for the `new` run.
pub fn write_differential_svg<W: Write>(
    base: &Folded,
    new: &Folded,
    opts: &SvgOptions,
    normalize: bool,
    out: W,
) -> Result<(), FlamegraphError> {
    if new.drawable_lines().is_empty() {
        return Err(FlamegraphError::Empty);
    }
    let mut merged = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options {
            normalize,
            ..Default::default()
        },
        Cursor::new(base.drawable_lines().join("\n")),
        Cursor::new(new.drawable_lines().join("\n")),
        &mut merged,
    )?;
    let mut inferno_opts = inferno_options(opts)?;
    flamegraph::from_reader(&mut inferno_opts, Cursor::new(merged), out)?;
    Ok(())
}

/// inferno's options for `opts`.
fn inferno_options(opts: &SvgOptions) -> Result<Options<'static>, FlamegraphError> {
    let mut inferno_opts = Options::default();
    inferno_opts.title = opts.title.clone();
    inferno_opts.subtitle = opts.subtitle.clone();
    inferno_opts.count_name = opts.count_name.clone();
    inferno_opts.image_width = opts.width;
    inferno_opts.deterministic = true;
    inferno_opts.func_frameattrs = frame_attrs(&opts.tooltips)?;
    Ok(inferno_opts)
}

/// The tooltips in inferno's "nameattr" form: `function<TAB>title=TEXT`.
fn frame_attrs(tooltips: &[Tooltip]) -> Result<FuncFrameAttrsMap, FlamegraphError> {
    let one_line = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let text: String = tooltips
        .iter()
        .map(|t| format!("{}\ttitle={}\n", one_line(&t.function), one_line(&t.text)))
        .collect();
    Ok(FuncFrameAttrsMap::from_reader(Cursor::new(text))?)
}

#[cfg(test)]
mod tests {
    use quick_xml::events::Event;
    use quick_xml::Reader;

    use super::*;

    /// The `<title>` texts of the SVG's frames, in document order.
    fn titles(svg: &[u8]) -> Vec<String> {
        let mut reader = Reader::from_reader(svg);
        let mut titles = Vec::new();
        let mut in_title = false;
        let mut buf = Vec::new();
        loop {
            match reader
                .read_event_into(&mut buf)
                .expect("the SVG parses as XML")
            {
                Event::Start(e) if e.name().as_ref() == b"title" => in_title = true,
                Event::End(e) if e.name().as_ref() == b"title" => in_title = false,
                Event::Text(t) if in_title => {
                    titles.push(t.decode().unwrap().into_owned());
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        titles
    }

    fn nested() -> Folded {
        let mut f = Folded::new();
        f.add(["app", "outer"], 0);
        f.add(["app", "outer", "toucher"], 8);
        f.add(["app", "outer", "middle"], 0);
        f.add(["app", "outer", "middle", "toucher"], 48);
        f
    }

    fn options() -> SvgOptions {
        SvgOptions {
            title: "./app — page-faults".into(),
            subtitle: Some("calibrated".into()),
            count_name: "page-faults".into(),
            tooltips: vec![Tooltip {
                function: "outer".into(),
                text: "outer: 4 calls, 56 page-faults, 14 per call".into(),
            }],
            width: None,
        }
    }

    #[test]
    fn svg_holds_every_frame_with_its_width_and_tooltip() {
        let mut svg = Vec::new();
        write_svg(&nested(), &options(), &mut svg).unwrap();
        let mut titles = titles(&svg);
        titles.sort();
        assert_eq!(
            titles,
            [
                "all (56 page-faults, 100%)",
                "app (56 page-faults, 100.00%)",
                "middle (48 page-faults, 85.71%)",
                "outer: 4 calls, 56 page-faults, 14 per call",
                "toucher (48 page-faults, 85.71%)",
                "toucher (8 page-faults, 14.29%)",
            ]
        );
        let text = String::from_utf8(svg).unwrap();
        assert!(text.contains("./app — page-faults"));
        assert!(text.contains(">calibrated<"));
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let mut f = Folded::new();
        f.add(["app", "f"], 0);
        f.add(["app", "g"], -3);
        let err = write_svg(&f, &options(), Vec::new()).unwrap_err();
        assert!(matches!(err, FlamegraphError::Empty));
    }

    #[test]
    fn differential_svg_colors_by_change_and_sizes_by_new() {
        let base = nested();
        let mut new = nested();
        new.add(["app", "outer", "toucher"], 4);
        let mut svg = Vec::new();
        write_differential_svg(&base, &new, &options(), false, &mut svg).unwrap();
        let titles = titles(&svg);
        assert!(
            titles.contains(&"toucher (12 page-faults, 20.00%; +6.67%)".to_string()),
            "{titles:?}"
        );
        assert!(
            titles.contains(&"toucher (48 page-faults, 80.00%; 0.00%)".to_string()),
            "{titles:?}"
        );
    }
}
