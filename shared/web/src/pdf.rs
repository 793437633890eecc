//! The invoice and receipt PDFs Paybridge renders where the accounting system has none.
//!
//! Plain PDF 1.7 on A4: text lines in the standard Helvetica fonts (never embedded) with
//! WinAnsiEncoding; characters outside it are drawn as '?'. Streams are not compressed: the
//! documents are a few kilobytes. A long list of payments flows onto further pages.

use app::payer::{InvoiceDocument, ReceiptDocument};
use app::payments::Payment;
use domain::{Money, Org};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use time::OffsetDateTime;

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");
/// Where the value of a "label: value" row starts.
const VALUE_X: f32 = MARGIN + 130.0;
/// The columns of the payments table.
const COLUMNS: [f32; 5] = [
    MARGIN,
    MARGIN + 70.0,
    MARGIN + 160.0,
    MARGIN + 240.0,
    MARGIN + 310.0,
];

/// An invoice as Paybridge shows it: the org, the customer, the dates, the amounts and the
/// payments made through Paybridge.
pub fn invoice(doc: &InvoiceDocument) -> Vec<u8> {
    let i = &doc.invoice;
    let mut sheet = Sheet::new();
    sheet.text(MARGIN, BOLD, 18.0, &doc.org.name);
    sheet.text(MARGIN, BOLD, 14.0, &format!("Invoice {}", i.number));
    sheet.rule();
    sheet.row("Billed to", &i.customer_name);
    sheet.row("Customer id", i.customer_id.as_str());
    sheet.row("Issue date", &i.issue_date.to_string());
    sheet.row("Due date", &i.due_date.to_string());
    sheet.row("Status", &label(i.status.as_str()));
    sheet.row("Total", &money(i.total));
    sheet.row("Amount due", &money(i.amount_due));
    sheet.gap();
    sheet.text(MARGIN, BOLD, 12.0, "Payments");
    if doc.payments.is_empty() {
        sheet.text(MARGIN, REGULAR, 10.0, "No payments made through Paybridge.");
    } else {
        let head = ["Date", "Amount", "Surcharge", "Status", "Payment"];
        sheet.columns(BOLD, &head.map(str::to_owned));
        for p in &doc.payments {
            // A payment of several invoices shows this invoice's part (its surcharge is the
            // whole payment's, on its receipt).
            let part = p.parts().into_iter().find(|a| a.invoice == i.number);
            let cells = [
                local_day(&doc.org, p.created_at),
                money(part.map_or(p.amount, |a| a.amount)),
                money(p.surcharge),
                label(p.status.as_str()),
                p.id.to_string(),
            ];
            sheet.columns(REGULAR, &cells);
        }
    }
    sheet.gap();
    sheet.text(
        MARGIN,
        REGULAR,
        9.0,
        &format!(
            "Amounts as {} records them; dates in {}.",
            doc.org.name, doc.org.settings.timezone
        ),
    );
    sheet.finish(&format!("{} invoice {}", doc.org.name, i.number))
}

/// A receipt of one payment.
pub fn receipt(doc: &ReceiptDocument) -> Vec<u8> {
    let p = &doc.payment;
    let mut sheet = Sheet::new();
    sheet.text(MARGIN, BOLD, 18.0, &doc.org.name);
    sheet.text(MARGIN, BOLD, 14.0, "Payment receipt");
    sheet.rule();
    sheet.row("Customer", &doc.customer_name);
    sheet.row("Customer id", doc.customer_id.as_str());
    if p.allocations.is_empty() {
        sheet.row("Invoice", p.invoice_number.as_str());
    } else {
        for part in &p.allocations {
            sheet.row(&format!("Invoice {}", part.invoice), &money(part.amount));
        }
    }
    sheet.row("Amount", &money(p.amount));
    sheet.row("Surcharge", &money(p.surcharge));
    let total = p.amount.checked_add(p.surcharge).map(money);
    sheet.row("Total charged", &total.unwrap_or_default());
    sheet.row("Method", &method(p));
    sheet.row("Status", &label(p.status.as_str()));
    sheet.row("Date", &local_day(&doc.org, p.created_at));
    sheet.row("Payment id", p.id.as_str());
    sheet.gap();
    sheet.text(
        MARGIN,
        REGULAR,
        9.0,
        &format!("Date in {}.", doc.org.settings.timezone),
    );
    sheet.finish(&format!("{} receipt {}", doc.org.name, p.id))
}

/// "1250.00 USD"
fn money(m: Money) -> String {
    format!("{} {}", m.amount_string(), m.currency().code())
}

/// "dispute_won" -> "Dispute won"
fn label(status: &str) -> String {
    app::notices::capitalised(&status.replace('_', " "))
}

/// "Visa ••••4242", "Chase ••••6789"
fn method(p: &Payment) -> String {
    match &p.method {
        Some(m) => format!(
            "{} \u{2022}\u{2022}\u{2022}\u{2022}{}",
            app::notices::capitalised(&m.brand),
            m.last4
        ),
        None => "-".to_owned(),
    }
}

/// The day of `at` in the org's time zone, `YYYY-MM-DD`.
fn local_day(org: &Org, at: OffsetDateTime) -> String {
    domain::local_date(&org.settings.timezone, at)
        .unwrap_or(at.date())
        .to_string()
}

/// Text in WinAnsiEncoding (Windows-1252): ASCII and Latin-1 as they are, the typographic
/// marks it has, '?' for anything else.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\u{20ac}' => 0x80,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2022}' => 0x95,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// Lines of text top to bottom on A4 pages.
struct Sheet {
    pages: Vec<Content>,
    /// The baseline of the next line on the last page.
    y: f32,
}

impl Sheet {
    fn new() -> Sheet {
        Sheet {
            pages: vec![Content::new()],
            y: HEIGHT - MARGIN,
        }
    }

    /// Room for a line of `size` points, on a new page if this one is full.
    fn advance(&mut self, size: f32) -> f32 {
        let step = size * 1.5;
        if self.y - step < MARGIN {
            self.pages.push(Content::new());
            self.y = HEIGHT - MARGIN;
        }
        self.y -= step;
        self.y
    }

    fn page(&mut self) -> &mut Content {
        self.pages.last_mut().expect("a page at least")
    }

    fn draw(&mut self, x: f32, y: f32, font: Name, size: f32, text: &str) {
        let bytes = win_ansi(text);
        self.page()
            .begin_text()
            .set_font(font, size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    fn text(&mut self, x: f32, font: Name, size: f32, text: &str) {
        let y = self.advance(size);
        self.draw(x, y, font, size, text);
    }

    /// "Label" in bold, its value beside it.
    fn row(&mut self, label: &str, value: &str) {
        let y = self.advance(11.0);
        self.draw(MARGIN, y, BOLD, 11.0, label);
        self.draw(VALUE_X, y, REGULAR, 11.0, value);
    }

    /// One line of the payments table.
    fn columns(&mut self, font: Name, cells: &[String; 5]) {
        let y = self.advance(9.0);
        for (x, cell) in COLUMNS.iter().zip(cells) {
            self.draw(*x, y, font, 9.0, cell);
        }
    }

    fn gap(&mut self) {
        self.advance(6.0);
    }

    /// A thin line across the page.
    fn rule(&mut self) {
        let y = self.advance(6.0) + 4.0;
        self.page()
            .set_line_width(0.5)
            .move_to(MARGIN, y)
            .line_to(WIDTH - MARGIN, y)
            .stroke();
    }

    fn finish(self, title: &str) -> Vec<u8> {
        let [catalog, tree, regular, bold, info] = [1, 2, 3, 4, 5].map(Ref::new);
        let count = self.pages.len();
        let ids: Vec<(Ref, Ref)> = (0..count)
            .map(|n| {
                let n = i32::try_from(n).expect("a few pages");
                (Ref::new(6 + 2 * n), Ref::new(7 + 2 * n))
            })
            .collect();
        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(ids.iter().map(|(page, _)| *page))
            .count(i32::try_from(count).expect("a few pages"));
        for (font, base) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
            pdf.type1_font(font)
                .base_font(Name(base.as_bytes()))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        pdf.document_info(info)
            .title(TextStr(title))
            .producer(TextStr("Paybridge"));
        for ((page_id, content_id), content) in ids.into_iter().zip(self.pages) {
            let mut page = pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT))
                .parent(tree)
                .contents(content_id);
            page.resources()
                .fonts()
                .pair(REGULAR, regular)
                .pair(BOLD, bold);
            page.finish();
            pdf.stream(content_id, &content.finish());
        }
        pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_win_ansi_and_others_are_replaced() {
        assert_eq!(win_ansi("Café • 4242 – ok"), b"Caf\xe9 \x95 4242 \x96 ok");
        assert_eq!(win_ansi("日本"), b"??");
    }

    #[test]
    fn a_long_table_flows_onto_more_pages() {
        let mut sheet = Sheet::new();
        for n in 0..200 {
            sheet.text(MARGIN, REGULAR, 10.0, &format!("line {n}"));
        }
        let pages = sheet.pages.len();
        assert!(pages > 1);
        let pdf = sheet.finish("many");
        assert!(pdf.starts_with(b"%PDF-1.7"));
        let count = format!("/Count {pages}");
        assert!(String::from_utf8_lossy(&pdf).contains(&count));
    }
}
