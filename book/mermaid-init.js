// Draws the book's pictures: the ```mermaid blocks of src/pictures/*.md.
//
// This file is ours. It replaces the mermaid-init.js that `mdbook-mermaid
// install` writes, together with the mdbook-mermaid preprocessor: building the
// book then needs mdbook alone, with nothing more to compile on a fresh clone.
// The preprocessor turned each ```mermaid block into <pre class="mermaid">
// when the book was built; here the reader's browser does the same when the
// page loads. The theme handling is mdbook-mermaid's (0.17.1), made to follow
// every theme change, the "Auto" theme following the system included.
//
// mdbook writes a ```mermaid block as an ordinary code block,
//   <pre><code class="language-mermaid">…the source, HTML-escaped…</code></pre>
// and book.js, which runs before this file (book.toml's additional-js comes
// after it), has already passed it to highlight.js. highlight.js 10 (mdbook
// 0.5's) knows no "mermaid": it logs a warning ("Could not find the language
// 'mermaid'") and leaves the block's text alone; book.js then adds the hljs
// class and a copy button. Whatever was added, the diagram's source is the code
// element's textContent (the text of any highlight <span>s included), and the
// whole <pre> is replaced, buttons and all.

(() => {
    if (typeof mermaid === 'undefined') {
        // mermaid.min.js did not load: leave the diagrams' source showing as code.
        return;
    }

    for (const code of document.querySelectorAll('code.language-mermaid')) {
        const block = code.closest('pre') || code;
        const diagram = document.createElement('pre');
        diagram.className = 'mermaid';
        diagram.textContent = code.textContent;
        block.replaceWith(diagram);
    }

    const darkThemes = ['ayu', 'navy', 'coal'];
    const html = document.documentElement;
    const isDark = () => darkThemes.some((theme) => html.classList.contains(theme));

    // mermaid draws every .mermaid element when the page has loaded.
    const wasDark = isDark();
    mermaid.initialize({ startOnLoad: true, theme: wasDark ? 'dark' : 'default' });

    // The simplest way to redraw the diagrams in the new theme is to reload the
    // page, and that is only needed between a light theme and a dark one. book.js
    // shows a theme by putting its name in the <html> element's classes, both
    // when one is picked and when "Auto" follows a change of the system's.
    new MutationObserver(() => {
        if (isDark() !== wasDark) {
            window.location.reload();
        }
    }).observe(html, { attributes: true, attributeFilter: ['class'] });
})();
