/* De-identification at the source, in the browser: a provider's CSV file without names or exact
   date of birth, byte for byte what `cldx deidentify` (cldx/identity/deidentify.py) writes.

   Every column is kept except family_name, given_names and date_of_birth; a file that had a
   date_of_birth column gains slk581 and birth_year_month (YYYY-MM) as its last two columns (a
   dependants file, known by its dependant_ref column, only birth_year_month), replacing any
   blank ones the template had.
   Output is UTF-8 without BOM, LF line endings, fields quoted only when they hold a comma, a
   quote or a line break, quotes doubled. A row whose client declined identification, or whose
   date of birth cannot be read, gets both blank; the latter is reported by row number only.

   Python's csv module is the reference, so the reader below is a port of its state machine
   (CPython Modules/_csv.c, excel dialect) rather than a textbook RFC 4180 parser: the two
   differ on malformed quoting (`"ab"c` is `abc`), and the output must not.

   Needs static/slk581.js first. Exposes `window.cldxDeidentify` = { deidentifyBytes,
   deidentifyText, decode, readCsv, writeCsv, parseBirthDate, headerKey, CsvError }. */
(function (root) {
  "use strict";

  const slk = root.cldxSlk581;
  const REMOVED = ["family_name", "given_names", "date_of_birth"];
  const ADDED = ["slk581", "birth_year_month"];
  // Python's csv.field_size_limit(): a longer field is an error there, so it is one here.
  const FIELD_LIMIT = 131072;

  class CsvError extends Error {}

  // --- Decoding ----------------------------------------------------------------------------

  /* Windows-1252 bytes Python's cp1252 codec leaves undefined (errors="replace" makes them
     U+FFFD); the WHATWG decoder maps them to C1 controls instead. */
  const CP1252_UNDEFINED = /[\u0081\u008d\u008f\u0090\u009d]/g;

  /* UTF-8, with or without BOM; Windows-1252 (Excel's plain "CSV") when it is not UTF-8. */
  function decode(bytes) {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes); // drops one BOM, as utf-8-sig does
    } catch (_) {
      return new TextDecoder("windows-1252").decode(bytes).replace(CP1252_UNDEFINED, "\ufffd");
    }
  }

  // --- Reading CSV: Python's csv.reader on io.StringIO(text, newline="") ---------------------

  const START_RECORD = 0;
  const START_FIELD = 1;
  const IN_FIELD = 2;
  const IN_QUOTED_FIELD = 3;
  const QUOTE_IN_QUOTED_FIELD = 4;
  const EAT_CRNL = 5;

  // Where an unquoted field's ordinary characters end.
  const UNQUOTED_STOP = /[,\r\n]/g;

  /* Python counts a field's length in code points; a surrogate pair is one. */
  function codePoints(text) {
    let count = text.length;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit >= 0xdc00 && unit <= 0xdfff) count--;
    }
    return count;
  }

  /* The rows of a CSV text: arrays of strings; an empty line is an empty array, as in Python. */
  function readCsv(text) {
    const rows = [];
    let fields = [];
    let field = "";
    let fieldLength = 0;
    let state = START_RECORD;

    function add(part) {
      fieldLength += codePoints(part);
      if (fieldLength > FIELD_LIMIT) throw new CsvError("field larger than field limit (" + FIELD_LIMIT + ")");
      field += part;
    }

    function save() {
      fields.push(field);
      field = "";
      fieldLength = 0;
    }

    function character(c) {
      const newline = c === "\n" || c === "\r";
      switch (state) {
        case START_RECORD:
          if (newline) {
            state = EAT_CRNL;
            return;
          }
          state = START_FIELD;
        // falls through: a normal character starts the first field
        case START_FIELD:
          if (newline) {
            save();
            state = EAT_CRNL;
          } else if (c === '"') {
            state = IN_QUOTED_FIELD;
          } else if (c === ",") {
            save();
          } else {
            add(c);
            state = IN_FIELD;
          }
          return;
        case IN_FIELD:
          if (newline) {
            save();
            state = EAT_CRNL;
          } else if (c === ",") {
            save();
            state = START_FIELD;
          } else {
            add(c);
          }
          return;
        case IN_QUOTED_FIELD:
          if (c === '"') state = QUOTE_IN_QUOTED_FIELD;
          else add(c);
          return;
        case QUOTE_IN_QUOTED_FIELD:
          if (c === '"') {
            add(c); // "" inside quotes is one quote
            state = IN_QUOTED_FIELD;
          } else if (c === ",") {
            save();
            state = START_FIELD;
          } else if (newline) {
            save();
            state = EAT_CRNL;
          } else {
            add(c); // a stray character after the closing quote joins the field (non-strict)
            state = IN_FIELD;
          }
          return;
        case EAT_CRNL:
          // Cannot happen when lines are split as StringIO splits them; Python says the same.
          if (!newline) throw new CsvError("new-line character seen in unquoted field");
          return;
      }
    }

    /* Python's reader sees the text line by line and gets an end-of-line after each line
       (ending in \n, \r\n or a lone \r) and after a last line without one. */
    function endOfLine() {
      switch (state) {
        case START_FIELD:
        case IN_FIELD:
        case QUOTE_IN_QUOTED_FIELD:
          save();
          state = START_RECORD;
          break;
        case EAT_CRNL:
          state = START_RECORD;
          break;
        default: // START_RECORD: an empty row; IN_QUOTED_FIELD: the field goes on
          break;
      }
      if (state === START_RECORD) {
        rows.push(fields);
        fields = [];
      }
    }

    const n = text.length;
    let i = 0;
    while (i < n) {
      // Runs of ordinary characters are taken whole: the same result, much faster.
      if (state === IN_FIELD) {
        UNQUOTED_STOP.lastIndex = i;
        const stop = UNQUOTED_STOP.exec(text);
        const end = stop ? stop.index : n;
        if (end > i) {
          add(text.slice(i, end));
          i = end;
          continue;
        }
      } else if (state === IN_QUOTED_FIELD) {
        // Line ends inside quotes are part of the field; their end-of-line does nothing.
        const quote = text.indexOf('"', i);
        const end = quote < 0 ? n : quote;
        if (end > i) {
          add(text.slice(i, end));
          i = end;
          continue;
        }
      }
      const c = text[i];
      i++;
      character(c);
      if (c === "\n" || (c === "\r" && text[i] !== "\n")) endOfLine();
    }
    if (n > 0 && text[n - 1] !== "\n" && text[n - 1] !== "\r") endOfLine();
    if (state === IN_QUOTED_FIELD) {
      // The text ended inside quotes: Python keeps what was read as the last field.
      save();
      rows.push(fields);
    }
    return rows;
  }

  // --- Writing CSV: Python's csv.writer(lineterminator="\n", quoting=QUOTE_MINIMAL) ----------

  // A lone \r is quoted too: CPython does so since 3.11.9 / 3.12.3 (gh-67044).
  const NEEDS_QUOTES = /[,"\r\n]/;

  function writeField(value) {
    return NEEDS_QUOTES.test(value) ? '"' + value.replace(/"/g, '""') + '"' : value;
  }

  function writeRow(fields) {
    // A row of one empty field would read back as an empty line, so Python writes "" for it.
    if (fields.length === 1 && fields[0] === "") return '""\n';
    return fields.map(writeField).join(",") + "\n";
  }

  function writeCsv(rows) {
    return rows.map(writeRow).join("");
  }

  // --- Dates of birth ------------------------------------------------------------------------

  /* Python's \d and int() take every Unicode decimal digit, not only 0-9. Decimal digits are
     encoded in runs of ten, 0 to 9, so a digit's value is its distance into its run. */
  const DIGIT = /^\p{Nd}$/u;
  const ISO = /^(\p{Nd}{4})-(\p{Nd}{1,2})-(\p{Nd}{1,2})$/u;
  const NZ = /^(\p{Nd}{1,2})\/(\p{Nd}{1,2})\/(\p{Nd}{4})$/u;

  function digitValue(ch) {
    let point = ch.codePointAt(0);
    let offset = 0;
    while (DIGIT.test(String.fromCodePoint(point - 1))) {
      point--;
      offset++;
    }
    return offset % 10;
  }

  function integer(digits) {
    let value = 0;
    for (const ch of digits) value = value * 10 + (ch >= "0" && ch <= "9" ? ch.charCodeAt(0) - 48 : digitValue(ch));
    return value;
  }

  function daysInMonth(year, month) {
    if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
    return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  }

  /* ISO yyyy-mm-dd or New Zealand d/m/yyyy as { year, month, day }; null when neither or not
     a real date (Python's datetime.date: years 1 to 9999). */
  function parseBirthDate(text) {
    const value = slk.strip(text);
    let year;
    let month;
    let day;
    let match = ISO.exec(value);
    if (match) {
      [year, month, day] = [integer(match[1]), integer(match[2]), integer(match[3])];
    } else {
      match = NZ.exec(value);
      if (!match) return null;
      [day, month, year] = [integer(match[1]), integer(match[2]), integer(match[3])];
    }
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
    return { year: year, month: month, day: day };
  }

  // --- The file ------------------------------------------------------------------------------

  const PYTHON_SPACES = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/g;

  /* Headers match as the validator matches them: case- and space-insensitively. */
  function headerKey(name) {
    return slk.strip(name).toLowerCase().replace(PYTHON_SPACES, "_");
  }

  /* The de-identified form of one CSV text: { text, rows, problems, removed, keyed }.
     `removed` names the header cells taken out; `keyed` says slk581 was added. */
  function deidentifyText(input) {
    const rows = readCsv(input);
    if (!rows.length) return { text: "", rows: 0, problems: [], removed: [], keyed: false };
    const header = rows[0];
    const keys = header.map(headerKey);
    const keyed = keys.indexOf("date_of_birth") >= 0;
    const addedColumns = keyed ? (keys.indexOf("dependant_ref") >= 0 ? ["birth_year_month"] : ADDED) : [];
    // The template's own (blank) slk581 and birth_year_month columns are replaced, not repeated.
    const replaced = (key) => REMOVED.indexOf(key) >= 0 || (keyed && ADDED.indexOf(key) >= 0);
    const kept = [];
    keys.forEach((key, i) => {
      if (!replaced(key)) kept.push(i);
    });
    const column = new Map(); // the first column of each name counts, as in Python
    keys.forEach((key, i) => {
      if (!column.has(key)) column.set(key, i);
    });

    function cell(row, name) {
      const i = column.get(name);
      return i !== undefined && i < row.length ? row[i] : "";
    }

    const out = [kept.map((i) => header[i]).concat(addedColumns)];
    const problems = [];
    let count = 0;
    for (let r = 1; r < rows.length; r++) {
      const row = rows[r];
      const number = r + 1; // the record's number in the file, header being 1
      if (!row.some((c) => slk.strip(c) !== "")) continue; // blank lines (Excel leaves them) carry nothing
      count++;
      let added = [];
      if (keyed) {
        const declined = slk.strip(cell(row, "identity_consent")).toLowerCase() === "n";
        const born = parseBirthDate(cell(row, "date_of_birth"));
        if (declined || born === null) {
          if (!declined) {
            problems.push("row " + number + ": date_of_birth is blank or not a date (yyyy-mm-dd or dd/mm/yyyy); slk581 left blank");
          }
          added = addedColumns.map(() => "");
        } else {
          const month = String(born.year).padStart(4, "0") + "-" + String(born.month).padStart(2, "0");
          added = addedColumns.length === 1
            ? [month]
            : [slk.slk581(cell(row, "family_name"), cell(row, "given_names"), born, cell(row, "gender")), month];
        }
      }
      out.push(kept.map((i) => (i < row.length ? row[i] : "")).concat(added));
    }
    return {
      text: writeCsv(out),
      rows: count,
      problems: problems,
      removed: keys.map((key, i) => [key, i]).filter(([key]) => replaced(key)).map(([, i]) => header[i]),
      keyed: keyed,
    };
  }

  /* deidentifyText of the decoded bytes, plus `bytes`: the text as UTF-8 without BOM. */
  function deidentifyBytes(bytes) {
    const result = deidentifyText(decode(bytes));
    result.bytes = new TextEncoder().encode(result.text);
    return result;
  }

  root.cldxDeidentify = Object.freeze({
    deidentifyBytes: deidentifyBytes,
    deidentifyText: deidentifyText,
    decode: decode,
    readCsv: readCsv,
    writeCsv: writeCsv,
    parseBirthDate: parseBirthDate,
    headerKey: headerKey,
    CsvError: CsvError,
  });
})(window);
