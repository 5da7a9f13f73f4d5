/* SLK-581 in the browser: the statistical linkage key, by the same rules as cldx/identity/slk.py.

   Family name letters 2, 3, 5 + given name letters 2, 3 + date of birth DDMMYYYY + sex digit.
   Names are folded to plain A-Z first (Unicode NFKD, marks dropped, everything else removed);
   a letter the name is too short to have is "2", a missing family name "999", a missing given
   name "99". The sex digit is the gender code's first character when it is 1, 2 or 3, else 9.

   Python and this file are held to the same vectors (cldx/identity/slk581_vectors.json) by
   tests/web/pages/test_deidentify_browser.py, which runs them in Chromium.

   Exposes `window.cldxSlk581` = { slk581, fold, sexDigit, strip }. `strip` is Python's
   str.strip() and is shared with static/deidentify.js. */
(function (root) {
  "use strict";

  /* The characters Python's str.isspace() accepts, which str.strip() and re's \s use.
     JavaScript's own trim() and \s differ: they take U+FEFF but not U+001C-U+001F or U+0085,
     so a header or date with one of those would be read differently from the CLI. */
  const PYTHON_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const EDGE_SPACE = new RegExp("^[" + PYTHON_SPACE + "]+|[" + PYTHON_SPACE + "]+$", "g");

  function strip(text) {
    return text.replace(EDGE_SPACE, "");
  }

  /* Upper-case plain letters only: "Pōkai" -> "POKAI", "O'Brien" -> "OBRIEN". Python drops the
     characters with a non-zero canonical combining class; any mark either way drops is not
     A-Z, so the last step makes the two agree (the test checks every code point). */
  function fold(name) {
    if (!name) return "";
    return name
      .normalize("NFKD")
      .replace(/\p{M}/gu, "")
      .toUpperCase()
      .replace(/[^A-Z]/g, "");
  }

  function letters(folded, positions, missing) {
    if (!folded) return missing;
    return positions.map((p) => (p <= folded.length ? folded[p - 1] : "2")).join("");
  }

  function sexDigit(gender) {
    const code = strip(gender || "");
    return code[0] === "1" || code[0] === "2" || code[0] === "3" ? code[0] : "9";
  }

  function pad(number, width) {
    return String(number).padStart(width, "0");
  }

  /* `born` is { year, month, day } of a real date (no Date object: no time zone can shift it). */
  function slk581(familyName, givenNames, born, gender) {
    return (
      letters(fold(familyName), [2, 3, 5], "999") +
      letters(fold(givenNames), [2, 3], "99") +
      pad(born.day, 2) +
      pad(born.month, 2) +
      pad(born.year, 4) +
      sexDigit(gender)
    );
  }

  root.cldxSlk581 = Object.freeze({ slk581: slk581, fold: fold, sexDigit: sexDigit, strip: strip });
})(window);
