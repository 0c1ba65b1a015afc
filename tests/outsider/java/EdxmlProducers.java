import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Properties;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.stream.XMLOutputFactory;
import javax.xml.stream.XMLStreamWriter;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.w3c.dom.Document;
import org.w3c.dom.Element;

/**
 * Two ways Java document systems write an edXML packet (edxml.md §1, §9):
 * "dom"  - javax.xml DOM + Transformer, as the systems built on the official SDK do:
 *          edXML: prefix inside the envelope, indented, standalone="no", and the SDK's
 *          habit of zipping the attachment before base64 (ContentType application/zip);
 * "stax" - a JAXB-less XMLStreamWriter: one line, no indentation, the file's own base64.
 * Usage: java EdxmlProducers dom|stax data.properties out.edxml
 */
public final class EdxmlProducers {
    static final String NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        try (InputStreamReader in = new InputStreamReader(new FileInputStream(args[1]),
                StandardCharsets.UTF_8)) {
            p.load(in);
        }
        try (OutputStream out = new FileOutputStream(args[2])) {
            if ("dom".equals(args[0])) {
                dom(p, out);
            } else if ("stax".equals(args[0])) {
                stax(p, out);
            } else {
                throw new IllegalArgumentException("mode " + args[0]);
            }
        }
    }

    // ------------------------------------------------------------------ DOM + Transformer

    static Element el(Document doc, Element parent, String name) {
        Element e = doc.createElementNS(NS, "edXML:" + name);
        parent.appendChild(e);
        return e;
    }

    static Element text(Document doc, Element parent, String name, String value) {
        Element e = el(doc, parent, name);
        e.setTextContent(value);
        return e;
    }

    static byte[] zip(String name, byte[] content) throws Exception {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (ZipOutputStream z = new ZipOutputStream(bos)) {
            z.putNextEntry(new ZipEntry(name));
            z.write(content);
            z.closeEntry();
        }
        return bos.toByteArray();
    }

    static void dom(Properties p, OutputStream out) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().newDocument();
        Element root = doc.createElementNS(NS, "edXML");
        doc.appendChild(root);
        Element env = el(doc, root, "edXMLEnvelope");
        env.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:edXML", NS);
        Element header = el(doc, env, "edXMLHeader");
        Element mh = el(doc, header, "MessageHeader");
        Element from = el(doc, mh, "From");
        text(doc, from, "OrganId", p.getProperty("sender"));
        text(doc, from, "OrganName", p.getProperty("senderName"));
        Element to = el(doc, mh, "To");
        text(doc, to, "OrganId", p.getProperty("recipient"));
        text(doc, to, "OrganName", p.getProperty("recipientName"));
        text(doc, mh, "DocumentId", p.getProperty("documentId"));
        Element code = el(doc, mh, "Code");
        text(doc, code, "CodeNumber", p.getProperty("codeNumber"));
        text(doc, code, "CodeNotation", p.getProperty("codeNotation"));
        Element pi = el(doc, mh, "PromulgationInfo");
        text(doc, pi, "Place", p.getProperty("place"));
        text(doc, pi, "PromulgationDate", p.getProperty("promulgationDate"));
        Element dt = el(doc, mh, "DocumentType");
        text(doc, dt, "Type", "1");
        text(doc, dt, "TypeName", p.getProperty("typeName"));
        text(doc, mh, "Subject", p.getProperty("subject"));
        Element si = el(doc, mh, "SignerInfo");
        text(doc, si, "FullName", p.getProperty("signer"));
        text(doc, mh, "DueDate", p.getProperty("dueDate"));
        Element oi = el(doc, mh, "OtherInfo");
        text(doc, oi, "Priority", "0");
        text(doc, oi, "PromulgationAmount", "1");
        text(doc, oi, "PageAmount", "1");
        text(doc, oi, "Direction", "false");
        Element thl = el(doc, header, "TraceHeaderList");
        Element th = el(doc, thl, "TraceHeader");
        text(doc, th, "OrganId", p.getProperty("sender"));
        text(doc, th, "Timestamp", p.getProperty("traceTime"));
        Element bu = el(doc, thl, "Bussiness");
        text(doc, bu, "BussinessDocType", "0");
        text(doc, bu, "BussinessDocReason", "Văn bản mới");
        text(doc, bu, "Paper", "0");
        Element body = el(doc, env, "edXMLBody");
        Element manifest = el(doc, body, "edXMLManifest");
        manifest.setAttribute("version", "1.0");
        Element ref = el(doc, manifest, "Reference");
        text(doc, ref, "ContentId", "cid:" + p.getProperty("contentId"));
        text(doc, ref, "ContentType", "application/zip");
        text(doc, ref, "AttachmentName", p.getProperty("attachmentName"));
        Element enc = doc.createElementNS(NS, "AttachmentEncoded");
        root.appendChild(enc);
        Element att = doc.createElementNS(NS, "Attachment");
        enc.appendChild(att);
        String[][] fields = {
            {"ContentId", "cid:" + p.getProperty("contentId")},
            {"AttachmentName", p.getProperty("attachmentName")},
            {"ContentType", "application/zip"},
        };
        for (String[] kv : fields) {
            Element e = doc.createElementNS(NS, kv[0]);
            e.setTextContent(kv[1]);
            att.appendChild(e);
        }
        byte[] raw = Base64.getDecoder().decode(p.getProperty("attachmentBase64"));
        Element cte = doc.createElementNS(NS, "edXML:ContentTransferEncoded");
        cte.setTextContent(Base64.getEncoder().encodeToString(
            zip(p.getProperty("attachmentName"), raw)));
        att.appendChild(cte);

        Transformer t = TransformerFactory.newInstance().newTransformer();
        t.setOutputProperty(OutputKeys.ENCODING, "UTF-8");
        t.setOutputProperty(OutputKeys.INDENT, "yes");
        t.setOutputProperty("{http://xml.apache.org/xslt}indent-amount", "2");
        t.transform(new DOMSource(doc), new StreamResult(out));
    }

    // ------------------------------------------------------------------ StAX

    static void leaf(XMLStreamWriter w, String name, String value) throws Exception {
        w.writeStartElement("edXML", name, NS);
        w.writeCharacters(value);
        w.writeEndElement();
    }

    static void stax(Properties p, OutputStream out) throws Exception {
        XMLStreamWriter w = XMLOutputFactory.newInstance().createXMLStreamWriter(out, "UTF-8");
        w.writeStartDocument("UTF-8", "1.0");
        w.setDefaultNamespace(NS);
        w.writeStartElement(NS, "edXML");
        w.writeDefaultNamespace(NS);
        w.writeStartElement("edXML", "edXMLEnvelope", NS);
        w.writeNamespace("edXML", NS);
        w.writeStartElement("edXML", "edXMLHeader", NS);
        w.writeStartElement("edXML", "MessageHeader", NS);
        w.writeStartElement("edXML", "From", NS);
        leaf(w, "OrganId", p.getProperty("sender"));
        w.writeEndElement();
        w.writeStartElement("edXML", "To", NS);
        leaf(w, "OrganId", p.getProperty("recipient"));
        w.writeEndElement();
        w.writeStartElement("edXML", "Code", NS);
        leaf(w, "CodeNumber", p.getProperty("codeNumber"));
        leaf(w, "CodeNotation", p.getProperty("codeNotation"));
        w.writeEndElement();
        w.writeStartElement("edXML", "PromulgationInfo", NS);
        leaf(w, "Place", p.getProperty("place"));
        leaf(w, "PromulgationDate", p.getProperty("promulgationDate"));
        w.writeEndElement();
        w.writeStartElement("edXML", "DocumentType", NS);
        leaf(w, "Type", "1");
        leaf(w, "TypeName", p.getProperty("typeName"));
        w.writeEndElement();
        leaf(w, "Subject", p.getProperty("subject"));
        w.writeStartElement("edXML", "SignerInfo", NS);
        leaf(w, "FullName", p.getProperty("signer"));
        w.writeEndElement();
        leaf(w, "DueDate", p.getProperty("dueDate"));
        leaf(w, "DocumentId", p.getProperty("documentId"));
        w.writeEndElement(); // MessageHeader
        w.writeStartElement("edXML", "TraceHeaderList", NS);
        w.writeStartElement("edXML", "Bussiness", NS);
        leaf(w, "BussinessDocType", "0");
        leaf(w, "BussinessDocReason", "Văn bản mới");
        w.writeEndElement();
        w.writeStartElement("edXML", "TraceHeader", NS);
        leaf(w, "OrganId", p.getProperty("sender"));
        leaf(w, "Timestamp", p.getProperty("traceTime"));
        w.writeEndElement();
        w.writeEndElement(); // TraceHeaderList
        w.writeEmptyElement("edXML", "Signature", NS);
        w.writeEndElement(); // edXMLHeader
        w.writeStartElement("edXML", "edXMLBody", NS);
        w.writeStartElement("edXML", "edXMLManifest", NS);
        w.writeAttribute("version", "1.0");
        w.writeStartElement("edXML", "Reference", NS);
        leaf(w, "ContentId", "cid:" + p.getProperty("contentId"));
        leaf(w, "ContentType", "application/pdf");
        leaf(w, "AttachmentName", p.getProperty("attachmentName"));
        w.writeEndElement();
        w.writeEndElement();
        w.writeEndElement(); // edXMLBody
        w.writeEndElement(); // edXMLEnvelope
        w.writeStartElement(NS, "AttachmentEncoded");
        w.writeStartElement(NS, "Attachment");
        String[][] fields = {
            {"ContentId", "cid:" + p.getProperty("contentId")},
            {"AttachmentName", p.getProperty("attachmentName")},
            {"ContentType", "application/pdf"},
            {"ContentTransferEncoded", p.getProperty("attachmentBase64")},
        };
        for (String[] kv : fields) {
            w.writeStartElement(NS, kv[0]);
            w.writeCharacters(kv[1]);
            w.writeEndElement();
        }
        w.writeEndElement();
        w.writeEndElement();
        w.writeEndElement(); // edXML
        w.writeEndDocument();
        w.flush();
        w.close();
    }
}
